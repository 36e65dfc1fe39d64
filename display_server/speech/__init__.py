"""Vietnamese speech: number reading, clip rendering (gTTS, espeak-ng) with its cache, espeak-ng's worker, the chime."""
