"""Ray-free audio code: WAV chunks in (pcm.py), silero-vad speech probabilities (vad.py), evidence
clips and their waveform (clip.py)."""
