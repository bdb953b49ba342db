#!/usr/bin/env bash
# Regenerates the simulator's spoken clips from clips.tsv with Debian's flite, sox and ffmpeg:
#   apt-get install flite sox ffmpeg
# Each clip is speech band-limited like a radio channel (300-3400 Hz, 8 kHz mono), then encoded
# the way Broadcastify nodes upload: AAC-LC .m4a at 16 kb/s with moov before mdat
# (trunk-recorder style) and 16 kb/s mp3 (SDRTrunk style). The outputs are committed; CI never
# runs this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -v '^#' clips.tsv | while IFS=$'\t' read -r name voice text; do
    flite -voice "$voice" -t "$text" -o "$work/$name.wav"
    sox "$work/$name.wav" -r 8000 -c 1 -b 16 "$work/$name.8k.wav" sinc 300-3400 norm -1
    ffmpeg -nostdin -loglevel error -y -i "$work/$name.8k.wav" -map_metadata -1 -fflags +bitexact \
        -c:a aac -b:a 16k -ar 8000 -ac 1 -movflags +faststart "$name.m4a"
    ffmpeg -nostdin -loglevel error -y -i "$work/$name.8k.wav" -map_metadata -1 -fflags +bitexact \
        -c:a libmp3lame -b:a 16k -ar 8000 -ac 1 -id3v2_version 0 -write_xing 0 "$name.mp3"
    printf '%s\t%s\n' "$name" "$(soxi -D "$work/$name.8k.wav")"
done > durations.tsv
