// Package webhook owns call webhooks: the events of calls (call.started, call.ended with the
// end-of-call report, call.transcript) posted to the server an agent or a phone number names
// (store.CallServer). It watches the node's event hub, so that every transport's calls are
// covered without any transport knowing of it; each event to post is written to the store's
// queue of deliveries before anything is sent, so the call's own path never waits on a
// receiver, and a node's delivery loop posts what is due, signed (Sign, Verify), retrying with
// exponential backoff and jitter until the receiver answers 2xx or the attempts run out. The
// queue lives in the database: a restart, or another node, picks up what was left.
package webhook
