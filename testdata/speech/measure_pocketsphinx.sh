#!/usr/bin/env bash
# Measures pocketsphinx (Debian pocketsphinx, pocketsphinx-en-us) on the caller-speech
# fixtures of this folder: word accuracy at 16 kHz, at 8 kHz (upsampled to 16 kHz for the
# only English model Debian ships, which is wideband; and read as 8 kHz with -samprate),
# each with the open-vocabulary language model and with a JSGF grammar of the phrases.
# Needs sox. Figures go in agent/speech/OFFLINE_STT.md.
set -euo pipefail
cd "$(dirname "$0")"
M=/usr/share/pocketsphinx/model/en-us
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
{
  echo "#JSGF V1.0;"; echo "grammar phrases;"
  printf "public <phrase> = "
  cut -f2 transcripts.tsv | tr - ' ' | paste -sd'|' | sed 's/|/ | /g'; echo ";"
} > "$T/phrases.gram"
# uh-huh is "uh huh" to the dictionary.
run() { # name wav extra-args...
  local wav=$2; shift 2
  pocketsphinx_continuous -infile "$wav" -hmm $M/en-us -dict $M/cmudict-en-us.dict -logfn /dev/null "$@" 2>/dev/null | tr -d '\n'
}
for mode in lm16 lm8up lm8 jsgf16 jsgf8up jsgf8; do
  while IFS=$'\t' read -r name text; do
    case $mode in
      *16) wav=16k/$name.wav ;;
      *8up) wav=$T/$name.up.wav; sox "$name.wav" -r 16000 "$wav" ;;
      *8) wav=$name.wav ;;
    esac
    case $mode in
      lm*) args=(-lm $M/en-us.lm.bin) ;;
      jsgf*) args=(-jsgf "$T/phrases.gram") ;;
    esac
    [[ $mode == *8 ]] && args+=(-samprate 8000 -nfft 256)
    printf "%s\t%s\t%s\t%s\n" "$mode" "$name" "$text" "$(run "$name" "$wav" "${args[@]}")"
  done < transcripts.tsv
done > "$T/results.tsv"
python3 - "$T/results.tsv" <<'PY'
import sys, collections
def words(s): return s.lower().replace("-", " ").split()
def edits(a, b):
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j-1] + 1, prev + (x != y))
    return d[len(b)]
tot = collections.defaultdict(lambda: [0, 0, 0])
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
for mode, name, ref, hyp in [r + [""] * (4 - len(r)) for r in rows]:
    r, h = words(ref), words(hyp)
    t = tot[mode]; t[0] += edits(r, h); t[1] += len(r); t[2] += (r == h)
    print(f"{mode:8} {name:20} {ref!r:45} -> {hyp!r}")
print()
for mode, (e, n, ok) in tot.items():
    print(f"{mode:8} word accuracy {100*(1-e/n):5.1f}% (WER {100*e/n:.1f}%), phrases exactly right {ok}/{len(rows)//len(tot)}")
PY
