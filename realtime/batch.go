package realtime

import (
	"bufio"
	"net"
	"net/http"
	"sync/atomic"
)

// maxBatchBytes bounds what one write of a stream carries: a subscriber with a backlog sends
// it in writes of about this size (the socket's send buffer takes that much at once), and a
// batch never holds more memory than this beyond its last message.
const maxBatchBytes = 32 << 10

// batchConn sits between the WebSocket library and an events socket's connection. The
// library flushes every message as it is written, which costs one write system call per
// delivery. While the socket's writer has more ready to send it holds the connection (hold),
// and what the library flushes in the meantime gathers here, to leave with the batch's last
// message in one write.
//
// The library makes every write to the connection (messages, and the pongs and close frames
// its reader sends) under its own frame lock, so buf is never touched by two goroutines at
// once; holding is the writer's, read by whoever writes.
type batchConn struct {
	net.Conn
	holding atomic.Bool
	buf     *[]byte
}

// hold makes the next writes gather (on) or lets the next write carry what gathered (off).
func (c *batchConn) hold(on bool) { c.holding.Store(on) }

func (c *batchConn) Write(p []byte) (int, error) {
	if c.holding.Load() && (c.buf == nil || len(*c.buf)+len(p) <= maxBatchBytes) {
		if c.buf == nil {
			c.buf = frameBuffers.Get().(*[]byte)
			*c.buf = (*c.buf)[:0]
		}
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	if c.buf == nil {
		return c.Conn.Write(p)
	}
	buf := c.buf
	c.buf = nil
	var err error
	if len(*buf)+len(p) <= maxBatchBytes {
		*buf = append(*buf, p...)
		_, err = c.Conn.Write(*buf)
	} else if _, err = c.Conn.Write(*buf); err == nil {
		_, err = c.Conn.Write(p)
	}
	if cap(*buf) <= 64<<10 {
		*buf = (*buf)[:0]
		frameBuffers.Put(buf)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// batchingWriter hands the WebSocket library a batchConn when it takes the connection over
// (the library finds Hijack on the writer it is given).
type batchingWriter struct {
	http.ResponseWriter
	conn *batchConn
}

func (w *batchingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The upgrade's response is out already; whatever the server still buffered goes first.
	if err := brw.Writer.Flush(); err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	w.conn = &batchConn{Conn: c}
	brw.Writer.Reset(w.conn)
	return w.conn, brw, nil
}
