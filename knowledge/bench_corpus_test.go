package knowledge_test

import (
	"math/rand/v2"
	"strings"
)

// helpTopic is a subject of a help centre: the nouns and verbs its articles use.
type helpTopic struct {
	nouns, verbs []string
}

// helpTopics are the subjects of the benchmark's help centre: an online shop's and a
// software service's, like the bases Switchboard's users upload.
var helpTopics = func() []helpTopic {
	var out []helpTopic
	for _, t := range []struct{ nouns, verbs string }{
		{"invoice payment card receipt subscription plan refund tax statement balance", "pay charge refund update download"},
		{"password login account email code verification device session browser link", "reset change verify sign recover"},
		{"order package parcel delivery courier tracking address shipment box label", "ship track deliver return collect"},
		{"return refund item exchange condition label warehouse credit policy window", "return exchange send inspect approve"},
		{"phone number call voicemail line extension forwarding ringtone carrier port", "call forward transfer record port"},
		{"router wifi network signal modem cable speed connection outage engineer", "restart connect reconnect test install"},
		{"printer cartridge ink paper tray scanner driver jam toner page", "print scan clean replace align"},
		{"appointment booking calendar slot reminder clinic doctor visit time confirmation", "book cancel reschedule confirm remind"},
		{"membership gym class trainer locker pass card studio pool schedule", "join freeze cancel upgrade attend"},
		{"warranty repair fault serial product claim technician part damage coverage", "claim repair replace register inspect"},
		{"team user role permission admin invite workspace seat owner group", "invite remove assign grant revoke"},
		{"report dashboard chart export filter metric data column spreadsheet range", "export filter share schedule download"},
		{"integration api key webhook token endpoint request limit error log", "connect authenticate configure rotate call"},
		{"notification alert message sms push setting preference channel digest sound", "enable disable mute snooze receive"},
		{"mortgage loan rate repayment term deposit lender application valuation broker", "apply borrow repay approve value"},
		{"insurance policy premium claim cover excess accident vehicle renewal quote", "claim renew insure cover quote"},
		{"flight ticket seat baggage boarding gate airline passport check fare", "book board check upgrade cancel"},
		{"hotel room reservation checkin checkout breakfast parking deposit guest stay", "reserve cancel extend upgrade pay"},
		{"prescription pharmacy medicine dose refill pharmacist repeat pickup label tablet", "refill collect order take renew"},
		{"meter reading energy bill tariff gas electricity supplier usage direct debit", "read switch submit pay estimate"},
		{"course lesson enrolment exam grade certificate tutor module deadline assignment", "enrol submit pass retake study"},
		{"restaurant table menu allergy booking party dish vegetarian deposit kitchen", "book order cancel serve reserve"},
		{"car rental vehicle licence mileage fuel pickup dropoff damage insurance", "rent collect drop inspect refuel"},
		{"app update version install storage backup sync phone tablet crash", "update install sync backup restore"},
		{"privacy data consent cookie request deletion record copy regulation officer", "request delete consent export access"},
		{"gift voucher coupon discount promotion code offer sale points reward", "redeem apply earn expire claim"},
	} {
		out = append(out, helpTopic{strings.Fields(t.nouns), strings.Fields(t.verbs)})
	}
	return out
}()

// helpWords are words every part of a help centre uses.
var helpWords = strings.Fields(`account customer support team help page settings option time day week month
	number email phone app website service screen button menu form detail information problem issue
	question request change status history list name date price cost fee hour minute business working online
	store branch office agent chat contact`)

// helpSentences are the shapes of a help centre's sentences: {n} a noun and {v} a verb of the
// article's topic, {g} a word of any article, {x} a name (of a product, a place, a plan).
var helpSentences = []string{
	"To {v} your {n}, open {g} and choose {n}.",
	"You can {v} the {n} from the {g} {g} at any time.",
	"If your {n} has not arrived within {d} days, contact our {g} {g}.",
	"The {x} {n} is available to every {g} on the {x} plan.",
	"We will {v} the {n} once the {n} has been checked by our {g}.",
	"Please note that a {n} can only be {v}ed while the {n} is active.",
	"Why can't I {v} my {n}? Usually the {n} is missing or the {g} has expired.",
	"Select {g}, then {n}, and follow the steps to {v} it.",
	"It takes up to {d} {g}s for the {n} to show in your {g}.",
	"{x} customers should {v} the {n} before the {n} ends.",
	"Our {g} cannot {v} a {n} on your behalf for security reasons.",
	"When you {v} a {n}, we send a {g} to the {g} on your {g}.",
	"There is no {g} to {v} a {n} in {x} or {x}.",
	"For a {n} over {d} pounds we need a {n} and a {g}.",
}

// helpCorpus writes help-centre chunks.
type helpCorpus struct {
	rng    *rand.Rand
	topics *rand.Zipf
	names  *rand.Zipf
	vocab  []string
}

func newHelpCorpus(vocab []string) *helpCorpus {
	rng := rand.New(rand.NewPCG(3, 4))
	return &helpCorpus{rng: rng, vocab: vocab,
		topics: rand.NewZipf(rng, 1.2, 4, uint64(len(helpTopics)-1)),
		names:  rand.NewZipf(rng, 1.07, 2, uint64(len(vocab)-1))}
}

// chunk is about 120 words of one topic's article about a subject (a product, a plan, a
// place: most of the names in it), and the topic and subject.
func (c *helpCorpus) chunk() (string, int, string) {
	topic := int(c.topics.Uint64())
	subject := capitalize(c.vocab[c.names.Uint64()])
	t := helpTopics[topic]
	var sb strings.Builder
	words := 0
	for words < 120 {
		s := helpSentences[c.rng.IntN(len(helpSentences))]
		for _, f := range strings.Fields(s) {
			w := f
			for _, r := range []struct {
				slot string
				list []string
			}{{"{n}", t.nouns}, {"{v}", t.verbs}, {"{g}", helpWords}} {
				w = replaceEach(w, r.slot, func() string { return r.list[c.rng.IntN(len(r.list))] })
			}
			w = replaceEach(w, "{x}", func() string {
				if c.rng.IntN(3) > 0 {
					return subject
				}
				return capitalize(c.vocab[c.names.Uint64()])
			})
			w = replaceEach(w, "{d}", func() string { return string(rune('2' + c.rng.IntN(8))) })
			if sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(w)
			words++
		}
	}
	return sb.String(), topic, subject
}

// question is what a caller asks of a chunk: two or three of its topic's words (the chunk
// has them) in a spoken question, half the time naming the chunk's subject too.
func (c *helpCorpus) question(text string, topic int, subject string) string {
	q := c.topicQuestion(text, topic)
	if c.rng.IntN(2) == 0 {
		q += " for " + subject
	}
	return q
}

func (c *helpCorpus) topicQuestion(text string, topic int) string {
	t := helpTopics[topic]
	has := func(list []string) []string {
		var out []string
		for _, w := range list {
			if strings.Contains(text, w) {
				out = append(out, w)
			}
		}
		if len(out) == 0 {
			return list
		}
		return out
	}
	nouns, verbs := has(t.nouns), has(t.verbs)
	n := func() string { return nouns[c.rng.IntN(len(nouns))] }
	v := func() string { return verbs[c.rng.IntN(len(verbs))] }
	switch c.rng.IntN(5) {
	case 0:
		return "how do I " + v() + " my " + n()
	case 1:
		return "why can't I " + v() + " the " + n() + " on my " + n()
	case 2:
		return "what happens to my " + n() + " if I " + v() + " it"
	case 3:
		return "is it possible to " + v() + " a " + n() + " " + n() + " online"
	default:
		return "I need help with the " + n() + " " + v()
	}
}

func replaceEach(s, slot string, fill func() string) string {
	for strings.Contains(s, slot) {
		s = strings.Replace(s, slot, fill(), 1)
	}
	return s
}

func capitalize(w string) string { return strings.ToUpper(w[:1]) + w[1:] }
