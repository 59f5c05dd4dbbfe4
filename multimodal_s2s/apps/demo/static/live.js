"use strict";
(() => {
  const record = document.getElementById("record");
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const committed = document.getElementById("committed");
  const tail = document.getElementById("tail");
  const FRAME_SAMPLES = 4096;
  let session = null;

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
  }

  function show(message) {
    if (message.error) showError(message.error);
    for (const word of message.committed || []) {
      committed.append((committed.textContent ? " " : "") + word.word);
    }
    if (message.tail !== undefined) tail.textContent = message.tail;
    if (message.warning) status.textContent = message.warning;
    if (message.done) status.textContent = "Done: " + message.seconds.toFixed(1) + " s of audio transcribed.";
  }

  function pcm16(samples) {
    const out = new Int16Array(samples.length);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
    }
    return out.buffer;
  }

  function stopAudio(current) {
    if (current.stopped) return;
    current.stopped = true;
    if (current.processor) current.processor.disconnect();
    if (current.source) current.source.disconnect();
    if (current.stream) current.stream.getTracks().forEach((track) => track.stop());
    if (current.context) current.context.close();
    record.textContent = "Record";
    record.setAttribute("aria-pressed", "false");
  }

  async function start() {
    error.hidden = true;
    committed.textContent = "";
    tail.textContent = "";
    const current = {};
    session = current;
    try {
      current.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
    } catch (problem) {
      session = null;
      showError("The microphone is not available: " + problem.message);
      return;
    }
    current.context = new AudioContext();
    const rate = Math.round(current.context.sampleRate);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    current.socket = new WebSocket(scheme + "//" + location.host + "/api/transcribe?rate=" + rate);
    current.socket.binaryType = "arraybuffer";
    current.socket.onmessage = (event) => show(JSON.parse(event.data));
    current.socket.onclose = (event) => {
      stopAudio(current);
      if (session === current) session = null;
      if (event.code !== 1000 && event.reason) showError(event.reason);
    };
    current.socket.onopen = () => {
      current.source = current.context.createMediaStreamSource(current.stream);
      current.processor = current.context.createScriptProcessor(FRAME_SAMPLES, 1, 1);
      current.processor.onaudioprocess = (event) => {
        if (current.socket.readyState === WebSocket.OPEN && !current.ending) {
          current.socket.send(pcm16(event.inputBuffer.getChannelData(0)));
        }
      };
      current.source.connect(current.processor);
      current.processor.connect(current.context.destination);
      status.textContent = "Listening…";
      record.textContent = "Stop";
      record.setAttribute("aria-pressed", "true");
    };
  }

  function stop() {
    const current = session;
    current.ending = true;
    status.textContent = "Finishing…";
    if (current.socket.readyState === WebSocket.OPEN) current.socket.send("end");
    stopAudio(current);
  }

  record.addEventListener("click", () => (session ? stop() : start()));
})();
