#!/bin/sh
# Regenerates the caller's speech fixtures: espeak-ng's voice, resampled by sox to the
# telephone's 8 kHz mono PCM16. Run from this folder; needs espeak-ng and sox.
set -eu
say() {
	espeak-ng -v en-us -s 160 -w /tmp/voice-fixture.wav "$2"
	sox /tmp/voice-fixture.wav -r 8000 -c 1 -b 16 "$1.wav"
}
say hello "Hello, I would like to book a table for two."
say question "What time do you open tomorrow?"
say digits "My number is four one five, two three nine"
say uhhuh "uh-huh"
say wait "Wait, stop, I have a different question about my order."
say yes "Yes."
rm -f /tmp/voice-fixture.wav
