#!/usr/bin/env bash
# Generates the transcript quality benchmark's calls into DIR (default target/bench-stt/calls)
# from calls.tsv with Debian's flite, sox and ffmpeg: each spoken call is a flite voice,
# band-limited to 300-3000 Hz at 8 kHz, under white noise at the row's SNR, with a squelch tail,
# and on some an alert page (A tone 1 s, B tone 2 s) before the dispatch; then non-speech calls
# (silence with hiss, two-tone pages, long tones, an FSK data burst, static). Calls alternate
# between AAC-LC .m4a at 16 kb/s and MP3 at 16 kb/s, as the two kinds of node upload them.
# Writes DIR/manifest.tsv: file, content type, kind, seconds, tones made, reference text.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../../../target/bench-stt/calls}"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$here/../../../crates/simulator/audio/synth.sh"
encode() { # wav name index -> "file<TAB>content type"; even indexes m4a, odd mp3
    local wav="$1" name="$2" index="$3"
    if (( index % 2 == 0 )); then
        ffmpeg -nostdin -loglevel error -y -i "$wav" -map_metadata -1 -fflags +bitexact \
            -c:a aac -b:a 16k -ar 8000 -ac 1 -movflags +faststart "$out/$name.m4a"
        printf '%s\t%s' "$name.m4a" "audio/mp4"
    else
        ffmpeg -nostdin -loglevel error -y -i "$wav" -map_metadata -1 -fflags +bitexact \
            -c:a libmp3lame -b:a 16k -ar 8000 -ac 1 -id3v2_version 0 -write_xing 0 "$out/$name.mp3"
        printf '%s\t%s' "$name.mp3" "audio/mpeg"
    fi
}
index=0
# noisy CLEAN SNR OUT: CLEAN plus white noise SNR dB below its power, radio band-limited.
noisy() {
    local clean="$1" snr="$2" result="$3"
    local length rms noise
    length=$(soxi -D "$clean")
    rms=$(sox "$clean" -n stat 2>&1 | awk '/RMS +amplitude/ {print $3}')
    noise=$(awk -v r="$rms" -v s="$snr" 'BEGIN {printf "%.6f", r / (10 ^ (s / 20)) * 1.732}')
    sox -R -n -r 8000 -c 1 -b 16 "$work/noise.wav" synth "$length" whitenoise vol "$noise"
    sox -m -v 1 "$clean" -v 1 "$work/noise.wav" "$result" sinc 300-3000
}
{
    grep -v '^#' "$here/calls.tsv" | while IFS=$'\t' read -r name voice snr tones text; do
        flite -voice "$voice" -t "$text" -o "$work/voice.wav"
        sox "$work/voice.wav" -r 8000 -c 1 -b 16 "$work/speech.wav" norm -6
        # A squelch tail: a short burst of noise as the carrier drops.
        sox -R -n -r 8000 -c 1 -b 16 "$work/tail.wav" synth 0.25 brownnoise vol 0.3
        parts=()
        if [[ "$tones" != "-" ]]; then
            sox -n -r 8000 -c 1 -b 16 "$work/a.wav" synth 1.0 sine "${tones%/*}" vol 0.4
            sox -n -r 8000 -c 1 -b 16 "$work/b.wav" synth 2.0 sine "${tones#*/}" vol 0.4
            sox -n -r 8000 -c 1 -b 16 "$work/gap.wav" synth 0.5 sine 1000 vol 0
            parts+=("$work/a.wav" "$work/b.wav" "$work/gap.wav")
        fi
        sox "${parts[@]}" "$work/speech.wav" "$work/tail.wav" "$work/clean.wav"
        noisy "$work/clean.wav" "$snr" "$work/call.wav"
        made=$([[ "$tones" == "-" ]] && echo "-" || echo "two_tone:$tones")
        printf '%s\tspeech\t%s\t%s\t%s\n' "$(encode "$work/call.wav" "$name" "$index")" \
            "$(soxi -D "$work/call.wav")" "$made" "$text"
        index=$((index + 1))
    done
    # Non-speech: name, tones made, then sox synth arguments per piece ("-" = silence).
    while IFS=$'\t' read -r name made pieces; do
        synth_pieces "$work/clean.wav" "$pieces"
        under_hiss "$work/clean.wav" "$work/call.wav" 3000
        printf '%s\tnon_speech\t%s\t%s\t\n' "$(encode "$work/call.wav" "$name" "$index")" \
            "$(soxi -D "$work/call.wav")" "$made"
        index=$((index + 1))
    done <<'NON_SPEECH'
n01	-	3.0:-
n02	-	6.0:-
n03	two_tone:600.9/1153.4	0.3:- 1.0:sine=600.9 3.0:sine=1153.4 0.5:-
n04	two_tone:567.1/1285.8	0.4:- 0.5:sine=567.1 1.5:sine=1285.8 0.5:-
n05	two_tone:433.7/349.0	0.2:- 0.8:sine=433.7 2.5:sine=349.0 0.6:-
n06	single:1000	0.3:- 4.0:sine=1000 0.5:-
n07	single:1500	0.3:- 8.0:sine=1500 0.5:-
n08	-	0.3:- 1.2:sine=1200+sine=2200 0.5:-
n09	-	0.5:- 1.5:whitenoise 0.5:- 1.0:pinknoise 0.5:-
n10	-	0.8:brownnoise 2.0:-
NON_SPEECH
} > "$out/manifest.tsv"
echo "$(wc -l < "$out/manifest.tsv") calls in $out" >&2
