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
grep -v '^#' nonspeech.tsv | while IFS=$'\t' read -r name _holds pieces; do
    parts=()
    i=0
    for piece in $pieces; do
        seconds=${piece%%:*}
        generators=${piece#*:}
        out="$work/$name.$i.wav"
        if [[ "$generators" == "-" ]]; then
            sox -n -r 8000 -c 1 -b 16 "$out" synth "$seconds" sine 1000 vol 0
        else
            # Several generators make several channels; they are mixed down to one.
            synth=()
            for generator in ${generators//+/ }; do synth+=(${generator//=/ }); done
            sox -n -r 8000 -b 16 "$out" synth "$seconds" "${synth[@]}" remix - vol 0.4
        fi
        parts+=("$out")
        i=$((i + 1))
    done
    sox "${parts[@]}" "$work/$name.clean.wav"
    length=$(soxi -D "$work/$name.clean.wav")
    sox -n -r 8000 -c 1 -b 16 "$work/$name.hiss.wav" synth "$length" whitenoise vol 0.02
    sox -m "$work/$name.clean.wav" "$work/$name.hiss.wav" "$work/$name.8k.wav" sinc 300-3400
    ffmpeg -nostdin -loglevel error -y -i "$work/$name.8k.wav" -map_metadata -1 -fflags +bitexact \
        -c:a aac -b:a 16k -ar 8000 -ac 1 -movflags +faststart "$name.m4a"
    ffmpeg -nostdin -loglevel error -y -i "$work/$name.8k.wav" -map_metadata -1 -fflags +bitexact \
        -c:a libmp3lame -b:a 16k -ar 8000 -ac 1 -id3v2_version 0 -write_xing 0 "$name.mp3"
    printf '%s\t%s\n' "$name" "$(soxi -D "$work/$name.8k.wav")"
done > nonspeech-durations.tsv
