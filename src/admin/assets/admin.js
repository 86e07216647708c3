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
