// Playing the other side's audio and video despite autoplay rules: try with sound; if the
// browser refuses (no user gesture yet, e.g. an observer without camera permission), play
// muted and show a "tap to turn on sound" button; any tap on the page also turns sound on.

export function playWithSound(video, stream, button) {
  video.srcObject = stream;
  video.muted = false;
  button.hidden = true;

  const unmute = () => {
    video.muted = false;
    video.play().then(() => { button.hidden = true; }).catch(() => { video.muted = true; });
  };
  button.onclick = unmute;

  video.play().catch((err) => {
    if (err?.name !== "NotAllowedError") return; // AbortError: a newer stream replaced this one
    video.muted = true;
    video.play().catch(() => {});
    button.hidden = false;
    document.addEventListener("pointerdown", function once(e) {
      if (e.target !== button) unmute();
      document.removeEventListener("pointerdown", once, true);
    }, true);
  });
}
