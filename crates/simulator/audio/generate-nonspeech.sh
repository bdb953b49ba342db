#!/usr/bin/env bash
# Regenerates the simulator's non-speech calls from nonspeech.tsv with Debian's sox and ffmpeg
# (apt-get install sox ffmpeg): two-tone pages, a long tone, DTMF, hiss, static and a key-up,
# each under a little radio hiss, band-limited and encoded like the spoken clips (8 kHz mono,
# AAC-LC .m4a at 16 kb/s with moov first, and 16 kb/s mp3). The outputs are committed; CI never
# runs this. Each row is: name, what it holds, then sox synth pieces `seconds:generator...`
# played one after the other (`-` for hiss only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. ./synth.sh
grep -v '^#' nonspeech.tsv | while IFS=$'\t' read -r name _holds pieces; do
    synth_pieces "$work/$name.clean.wav" "$pieces"
    under_hiss "$work/$name.clean.wav" "$work/$name.8k.wav" 3400
    ffmpeg -nostdin -loglevel error -y -i "$work/$name.8k.wav" -map_metadata -1 -fflags +bitexact \
        -c:a aac -b:a 16k -ar 8000 -ac 1 -movflags +faststart "$name.m4a"
    ffmpeg -nostdin -loglevel error -y -i "$work/$name.8k.wav" -map_metadata -1 -fflags +bitexact \
        -c:a libmp3lame -b:a 16k -ar 8000 -ac 1 -id3v2_version 0 -write_xing 0 "$name.mp3"
    printf '%s\t%s\n' "$name" "$(soxi -D "$work/$name.8k.wav")"
done > nonspeech-durations.tsv
