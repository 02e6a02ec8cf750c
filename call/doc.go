// Package call owns what every Switchboard call has, whatever carries it (SIP, WebRTC, a
// media-stream socket): its record and the write-behind updates of it, the typed reason it
// ended with (mapped to SIP causes and WebSocket close codes), the events it publishes, the
// logger its lines are written with, and the built-in destinations (echo, tone). Transports
// are adapters that hand it a media.Stream and their signalling.
package call
