// CoWork OS admin page: live countdown for pairing-code expiry.
// Everything works without this script; it only updates the remaining time.
(function () {
  "use strict";
  function fmt(secs) {
    if (secs <= 0) { return "expired"; }
    var m = Math.floor(secs / 60), s = secs % 60;
    return (m > 0 ? m + " min " : "") + s + " s left";
  }
  function tick() {
    var now = Math.floor(Date.now() / 1000);
    var els = document.querySelectorAll("[data-expires-at]");
    for (var i = 0; i < els.length; i++) {
      var at = parseInt(els[i].getAttribute("data-expires-at"), 10);
      if (!isNaN(at)) { els[i].textContent = fmt(at - now); }
    }
  }
  tick();
  setInterval(tick, 1000);
})();

// Updates page: upload a bundle with a progress bar. The bundle is sent as the
// request body with the page's CSRF token in a header; the answer is JSON
// {ok, message}. Without this script the page says to use coworkctl.
(function () {
  "use strict";
  var box = document.getElementById("update-upload");
  if (!box) { return; }
  var file = document.getElementById("update-file");
  var start = document.getElementById("update-start");
  var bar = document.getElementById("update-progress");
  var result = document.getElementById("update-result");
  function say(text, ok) {
    result.textContent = text;
    result.className = ok === undefined ? "" : (ok ? "ok" : "error");
  }
  start.addEventListener("click", function () {
    if (!file.files || file.files.length === 0) { say("Choose a bundle first.", false); return; }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/updates/upload");
    xhr.setRequestHeader("X-CSRF-Token", box.getAttribute("data-csrf"));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { bar.value = Math.floor(e.loaded * 100 / e.total); }
    });
    xhr.upload.addEventListener("load", function () {
      bar.value = 100;
      say("Uploaded. Checking the signature and writing the other slot; this takes a few minutes...");
    });
    xhr.addEventListener("load", function () {
      var answer = null;
      try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = null; }
      if (answer && typeof answer.message === "string") { say(answer.message, answer.ok === true); }
      else { say("The appliance answered " + xhr.status + ".", false); }
      start.disabled = false;
    });
    xhr.addEventListener("error", function () { say("The upload failed (connection lost).", false); start.disabled = false; });
    start.disabled = true;
    bar.value = 0;
    say("Uploading...");
    xhr.send(file.files[0]);
  });
})();
