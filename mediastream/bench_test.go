package mediastream_test

import (
	"context"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/mediastream"
)

// BenchmarkMediaStreamFrame is the server's cost of one 20 ms frame each way on a
// media-stream socket over loopback: in, a media frame read, its JSON decoded, its base64
// and μ-law decoded and the frame taken by ReadFrame; out, WriteFrame's μ-law, base64 and
// JSON and the socket write (unpaced: the lead is 1,000 hours), with its marks. The client's
// side runs in the same process and is counted too.
//
//	go test ./mediastream/ -run '^$' -bench MediaStreamFrame -benchmem
func BenchmarkMediaStreamFrame(b *testing.B) {
	b.Run("in", func(b *testing.B) {
		url, got := mediaServer(b, mediastream.Options{Inbound: 1 << 12})
		c := benchDial(b, url)
		ms := <-got
		defer ms.Close()
		frames := make([][]byte, 1000)
		payload := base64.StdEncoding.EncodeToString(make([]byte, 160))
		seq := 2
		f := media.Frame{Samples: make([]int16, 160)}
		b.ReportAllocs()
		b.ResetTimer()
		for done := 0; done < b.N; {
			k := min(len(frames), b.N-done)
			b.StopTimer()
			for i := range k {
				frames[i] = []byte(`{"event":"media","sequenceNumber":"` + strconv.Itoa(seq) + `","streamSid":"` + testSid +
					`","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"` + payload + `"}}`)
				seq++
			}
			b.StartTimer()
			go func() {
				for _, fr := range frames[:k] {
					_ = c.Write(context.Background(), websocket.MessageText, fr)
				}
			}()
			for range k {
				if err := ms.ReadFrame(&f); err != nil {
					b.Fatal(err)
				}
			}
			done += k
		}
	})
	b.Run("out", func(b *testing.B) {
		url, got := mediaServer(b, mediastream.Options{Lead: 1000 * time.Hour})
		c := benchDial(b, url)
		ms := <-got
		defer ms.Close()
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		f := media.Frame{Rate: 8000, Samples: make([]int16, 160)}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := ms.WriteFrame(&f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchDial(b *testing.B, url string) *websocket.Conn {
	b.Helper()
	c, _, err := websocket.Dial(context.Background(), url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.CloseNow() })
	if err := c.Write(context.Background(), websocket.MessageText, []byte(startFrame(1))); err != nil {
		b.Fatal(err)
	}
	return c
}
