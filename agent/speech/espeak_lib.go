package speech

/*
#cgo pkg-config: espeak-ng
#include <stdlib.h>
#include <espeak-ng/speak_lib.h>
#include <espeak-ng/espeak_ng.h>

extern int switchboardEspeakChunk(short *wav, int n, espeak_EVENT *events);
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"
)

// libespeak-ng keeps its state in globals and is not thread-safe, so this file owns the
// one instance of it in the process: initialisation once, and a lock (a channel, so that
// waiting for it can give up with a context) held for each synthesis. The audio of a
// synthesis comes back through a C callback that runs on the synthesising goroutine while
// it holds the lock; it hands the chunks to the synthesis in progress, libActive.

var (
	libOnce  sync.Once
	libErr   error
	libPath  string // the espeak-ng-data directory in use
	libRate  int
	libLock  = make(chan struct{}, 1)
	libVoice string // the voice set last; setting one reads files, so it is skipped when unchanged
	libWPM   int
	// libLanguages are the language tags of the installed voices ("en-gb", "en-us", "fr").
	libLanguages map[string]bool
	// libActive receives the chunks of the synthesis holding libLock.
	libActive func(samples []int16) bool
)

// initLib starts libespeak-ng once for the process. dataPath "" lets the library look
// where it does by default: $ESPEAK_DATA_PATH, then the path it was built with (Debian:
// /usr/lib/x86_64-linux-gnu/espeak-ng-data).
func initLib(dataPath string) error {
	if dataPath != "" {
		// The library would quietly fall back to its default; a path that was asked for
		// and is wrong is an error, and does not spoil a later, right one.
		if !isDataDir(dataPath) && !isDataDir(filepath.Join(dataPath, "espeak-ng-data")) {
			return fmt.Errorf("%w: %s holds no espeak-ng-data (no phontab)", ErrEspeakInit, dataPath)
		}
	}
	libOnce.Do(func() {
		var cpath *C.char
		if dataPath != "" {
			cpath = C.CString(dataPath)
			defer C.free(unsafe.Pointer(cpath))
		}
		C.espeak_ng_InitializePath(cpath)
		var ectx C.espeak_ng_ERROR_CONTEXT
		if st := C.espeak_ng_Initialize(&ectx); st != C.ENS_OK {
			C.espeak_ng_ClearErrorContext(&ectx)
			where := dataPath
			if where == "" {
				where = "the default path (ESPEAK_DATA_PATH, or the library's built-in espeak-ng-data)"
			}
			libErr = fmt.Errorf("%w: data at %s: %s (install espeak-ng-data, or set ESPEAK_DATA_PATH)", ErrEspeakInit, where, statusMessage(st))
			return
		}
		// 50 ms chunks: the first audio of a sentence comes out long before its end.
		if st := C.espeak_ng_InitializeOutput(C.ENOUTPUT_MODE_SYNCHRONOUS, 50, nil); st != C.ENS_OK {
			libErr = fmt.Errorf("%w: output: %s", ErrEspeakInit, statusMessage(st))
			return
		}
		libRate = int(C.espeak_ng_GetSampleRate())
		if libRate <= 0 {
			libErr = fmt.Errorf("%w: sample rate %d", ErrEspeakInit, libRate)
			return
		}
		var data *C.char
		C.espeak_Info(&data)
		libPath = C.GoString(data)
		libLanguages = listLanguages()
		C.espeak_SetSynthCallback((*C.t_espeak_callback)(unsafe.Pointer(C.switchboardEspeakChunk)))
	})
	if libErr == nil && dataPath != "" && filepath.Clean(dataPath) != libPath && filepath.Join(dataPath, "espeak-ng-data") != libPath {
		return fmt.Errorf("%w: already started with the data at %s, not %s", ErrEspeakInit, libPath, dataPath)
	}
	return libErr
}

// listLanguages reads the language tags of the installed voices. Each voice's languages
// field is a run of (priority byte, NUL-terminated tag) ending with a zero byte.
func listLanguages() map[string]bool {
	out := map[string]bool{}
	voices := C.espeak_ListVoices(nil)
	if voices == nil {
		return out
	}
	for _, v := range unsafe.Slice(voices, 4096) {
		if v == nil {
			break
		}
		p := unsafe.Pointer(v.languages)
		for p != nil && *(*byte)(p) != 0 {
			tag := C.GoString((*C.char)(unsafe.Add(p, 1)))
			out[strings.ToLower(tag)] = true
			p = unsafe.Add(p, 2+len(tag))
		}
	}
	return out
}

func isDataDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "phontab"))
	return err == nil && st.Mode().IsRegular()
}

func statusMessage(st C.espeak_ng_STATUS) string {
	var buf [256]C.char
	C.espeak_ng_GetStatusCodeMessage(st, &buf[0], C.size_t(len(buf)))
	return C.GoString(&buf[0])
}

//export switchboardEspeakChunk
func switchboardEspeakChunk(wav *C.short, n C.int, _ *C.espeak_EVENT) C.int {
	if wav == nil || n <= 0 || libActive == nil {
		return 0
	}
	if !libActive(unsafe.Slice((*int16)(unsafe.Pointer(wav)), int(n))) {
		return 1 // stop this synthesis
	}
	return 0
}

// libSynthesize speaks text with voice at wpm, handing chunks to out as they are made;
// pause ends it with espeak's sentence pause (text that more text follows). The caller
// holds libLock.
func libSynthesize(text, voice string, wpm int, pause bool, out func([]int16) bool) error {
	if voice != libVoice {
		cv := C.CString(voice)
		st := C.espeak_ng_SetVoiceByName(cv)
		if lang, _, _ := strings.Cut(voice, "+"); st != C.ENS_OK && libLanguages[strings.ToLower(lang)] {
			// A language tag ("en-gb") names no voice file; ask for a voice of the language.
			var sel C.espeak_VOICE
			cl := C.CString(lang)
			defer C.free(unsafe.Pointer(cl))
			sel.languages = cl
			st = C.espeak_ng_SetVoiceByProperties(&sel)
		}
		C.free(unsafe.Pointer(cv))
		if st != C.ENS_OK {
			libVoice = ""
			return fmt.Errorf("%w: %q (espeak-ng: %s)", ErrUnknownVoice, voice, statusMessage(st))
		}
		libVoice = voice
		libWPM = 0 // a new voice resets the rate
	}
	if wpm != libWPM {
		if st := C.espeak_ng_SetParameter(C.espeakRATE, C.int(wpm), 0); st != C.ENS_OK {
			return fmt.Errorf("speech: espeak-ng rate %d: %s", wpm, statusMessage(st))
		}
		libWPM = wpm
	}
	ct := C.CString(text)
	defer C.free(unsafe.Pointer(ct))
	libActive = out
	defer func() { libActive = nil }()
	flags := C.uint(C.espeakCHARS_UTF8)
	if pause {
		flags |= C.espeakENDPAUSE
	}
	if e := C.espeak_Synth(unsafe.Pointer(ct), C.size_t(len(text)+1), 0, C.POS_CHARACTER, 0,
		flags, nil, nil); e != C.EE_OK {
		return fmt.Errorf("speech: espeak-ng synthesis failed (error %d)", int(e))
	}
	return nil
}
