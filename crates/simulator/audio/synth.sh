# Shared by generate-nonspeech.sh and the transcript benchmark's generator (sourced, not run):
# synthesised non-speech audio with sox.

# synth_pieces OUT.wav "seconds:generators ..." — the pieces one after the other, 8 kHz mono;
# generators are sox synth arguments joined by + (several are mixed), = for spaces; - is silence.
synth_pieces() {
    local out="$1" pieces="$2" work
    work=$(mktemp -d)
    local parts=() i=0 piece seconds generators generator
    for piece in $pieces; do
        seconds=${piece%%:*}
        generators=${piece#*:}
        if [[ "$generators" == "-" ]]; then
            sox -n -r 8000 -c 1 -b 16 "$work/$i.wav" synth "$seconds" sine 1000 vol 0
        else
            local synth=()
            for generator in ${generators//+/ }; do synth+=(${generator//=/ }); done
            sox -R -n -r 8000 -b 16 "$work/$i.wav" synth "$seconds" "${synth[@]}" remix - vol 0.4
        fi
        parts+=("$work/$i.wav")
        i=$((i + 1))
    done
    sox "${parts[@]}" "$out"
    rm -rf "$work"
}

# under_hiss IN.wav OUT.wav HIGH_HZ — IN with a little radio hiss, band-limited to 300-HIGH_HZ.
under_hiss() {
    local in="$1" out="$2" high="$3" hiss
    hiss=$(mktemp --suffix .wav)
    sox -R -n -r 8000 -c 1 -b 16 "$hiss" synth "$(soxi -D "$in")" whitenoise vol 0.02
    sox -m "$in" "$hiss" "$out" sinc "300-$high"
    rm -f "$hiss"
}
