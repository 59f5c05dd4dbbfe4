"""Speech: where to cut a recording and what to make of its decoded windows; ``pipelines.transcription`` uses it.

- ``vad``: Silero VAD's speech regions and the windows made from them (the default splitter);
  ``silero_graph``: Silero's packaged network run as matrix products (built with the first detector).
- ``energy``: the energy splitter (frames far below the recording's loud frames are silence).
- ``windows``: the rules both splitters share: a long region cut in its window's last third (where the splitter
  chooses), consecutive pieces joined while the window is short.
- ``fallback``: whisper's checks of a decoded window and its fallback by sampling at rising temperatures.
- ``word_timing``: word timestamps from CTC forced alignment or from the decoder's cross-attention.
- ``subtitles``: a transcript as txt, vtt, srt, tsv or json.

Nothing heavy is imported here: onnx, onnxruntime and silero-vad are imported when a VAD is first built.
"""
