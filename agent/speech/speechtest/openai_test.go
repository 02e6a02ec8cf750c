package speechtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFixturesSoundLikeSpeech(t *testing.T) {
	fx := speechtest.Fixtures(t)
	if len(fx) < 10 {
		t.Fatalf("%d fixtures", len(fx))
	}
	for _, f := range fx {
		for _, rate := range []int{8000, 16000} {
			pcm := f.Load(t, rate)
			sec := float64(len(pcm)) / float64(rate)
			var e float64
			for _, s := range pcm {
				e += float64(s) * float64(s)
			}
			rms := math.Sqrt(e / float64(len(pcm)))
			if sec < 0.9 || sec > 3.05 || rms < 500 {
				t.Errorf("%s at %d Hz: %.2f s, rms %.0f", f.Name, rate, sec, rms)
			}
		}
	}
}

func post(t *testing.T, url, ctype string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func TestStandInRefusesWhatOpenAIRefuses(t *testing.T) {
	srv := speechtest.NewOpenAI(t)
	speechURL := srv.URL + "/audio/speech"
	for _, tt := range []struct{ body, want string }{
		{`{"input":"hi","voice":"alloy","response_format":"pcm"}`, "model"},
		{`{"model":"tts-1","voice":"alloy","response_format":"pcm"}`, "'input'"},
		{`{"model":"tts-1","input":"hi","response_format":"pcm"}`, "'voice'"},
		{`{"model":"tts-1","input":"hi","voice":"alloy","speed":9}`, "speed"},
		{`{"model":"tts-1","input":"hi","voice":"alloy"}`, "mp3"},
		{`not json`, "parse the JSON"},
	} {
		code, m := post(t, speechURL, "application/json", []byte(tt.body))
		if code != 400 || !strings.Contains(errMessage(m), tt.want) {
			t.Errorf("%s: %d %v", tt.body, code, m)
		}
	}

	form := func(fields map[string]string, file []byte) ([]byte, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for k, v := range fields {
			if err := mw.WriteField(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if file != nil {
			w, _ := mw.CreateFormFile("file", "audio.wav")
			if _, err := w.Write(file); err != nil {
				t.Fatal(err)
			}
		}
		mw.Close()
		return b.Bytes(), mw.FormDataContentType()
	}
	trURL := srv.URL + "/audio/transcriptions"
	body, ct := form(map[string]string{"model": "whisper-1"}, []byte("RIFF....not a wav"))
	if code, m := post(t, trURL, ct, body); code != 400 || !strings.Contains(errMessage(m), "Invalid file format") {
		t.Errorf("bad WAV: %d %v", code, m)
	}
	body, ct = form(map[string]string{}, []byte("x"))
	if code, m := post(t, trURL, ct, body); code != 400 || !strings.Contains(errMessage(m), "model") {
		t.Errorf("no model: %d %v", code, m)
	}
	body, ct = form(map[string]string{"model": "whisper-1"}, nil)
	if code, m := post(t, trURL, ct, body); code != 400 || !strings.Contains(errMessage(m), "'file'") {
		t.Errorf("no file: %d %v", code, m)
	}
	if code, m := post(t, trURL, "application/json", []byte(`{}`)); code != 400 || !strings.Contains(errMessage(m), "multipart") {
		t.Errorf("JSON body: %d %v", code, m)
	}
	if len(srv.Transcriptions())+len(srv.Speeches()) != 0 {
		t.Error("refused requests were recorded as answered")
	}
}
