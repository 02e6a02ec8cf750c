package main

import (
	"slices"
	"testing"
	"time"
)

func TestSequences(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		want []int
	}{
		{"switchboard event", `{"type":"event","event":{"id":7,"type":"agent.updated","data":{"agent":{"metadata":{"fanout_seq":42}}}}}`, []int{42}},
		{"centrifugo batch", `{"push":{"channel":"bench:fanout","pub":{"data":{"fanout_seq":3,"pad":"xx"}}}}` + "\n" +
			`{}` + "\n" + `{"push":{"channel":"bench:fanout","pub":{"data":{"fanout_seq":4,"pad":"xx"}}}}`, []int{3, 4}},
		{"no event", `{"type":"ack","id":"1","action":"subscribe","topics":["agent:a"]}`, nil},
		{"no number", `{"fanout_seq":"x"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sequences(nil, []byte(tc.msg)); !slices.Equal(got, tc.want) {
				t.Errorf("sequences = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPings(t *testing.T) {
	for msg, want := range map[string]int{
		`{}`: 1,
		`{"push":{"pub":{"data":{"fanout_seq":1}}}}` + "\n{}": 1,
		"{}\n{}":                       2,
		`{"id":2,"subscribe":{}}`:      0,
		`{"push":{"pub":{"data":{}}}}`: 0,
	} {
		if got := pings([]byte(msg)); got != want {
			t.Errorf("pings(%q) = %d, want %d", msg, got, want)
		}
	}
}

func TestDistribution(t *testing.T) {
	var s []time.Duration
	for i := range 100 {
		s = append(s, time.Duration(100-i)*time.Millisecond)
	}
	d := distribution(s)
	if d.Count != 100 || d.P50 != 50 || d.P99 != 99 || d.Max != 100 {
		t.Errorf("distribution of 1..100 ms = %+v", d)
	}
	if (distribution(nil) != Distribution{}) {
		t.Error("distribution of nothing is not zero")
	}
}
