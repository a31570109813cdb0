#!/usr/bin/env bash
# Regenerates Lineup's prompts from prompts.txt with Debian's espeak-ng and sox, in the two
# formats Asterisk plays without transcoding on the usual trunks: 8 kHz 16-bit mono WAV
# (format_wav) and raw mu-law (format_pcm, `.ulaw`). Same versions of the tools, same bytes.
#
#   sudo apt-get install espeak-ng sox
#   deploy/asterisk/sounds/generate.sh
#
# Record your own voice instead if you like: keep the names, 8 kHz mono.
set -euo pipefail
cd "$(dirname "$0")"
command -v espeak-ng >/dev/null && command -v sox >/dev/null || {
  echo "generate.sh needs espeak-ng and sox (apt-get install espeak-ng sox)" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -v '^#' prompts.txt | while IFS='|' read -r name words; do
  [ -n "$name" ] || continue
  # -s words per minute: a little slower than espeak's 175 for a phone line.
  espeak-ng -v en-us -s 150 -w "$work/$name.raw.wav" "$words"
  # Resample to 8 kHz mono, leave 0.3 s of silence at the end, keep 1 dB of headroom.
  sox -R -D "$work/$name.raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$name.wav" gain -n -1 pad 0 0.3
  sox -R "$name.wav" -t ul "$name.ulaw"
  echo "$name: $(soxi -D "$name.wav") s"
done
