// mitra portal: progressive enhancement only. Every page works without it.
// Served from /portal/static under a CSP that allows no inline script.
(function () {
  "use strict";

  // Copy buttons: data-copy holds the text, data-copy-from names an element.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "skip";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) { return; }
    var text = button.getAttribute("data-copy");
    var from = button.getAttribute("data-copy-from");
    if (from) {
      var source = document.getElementById(from);
      text = source ? source.textContent : "";
    }
    if (!text) { return; }
    var label = button.textContent;
    copyText(text).then(function () {
      button.textContent = button.getAttribute("data-done") || label;
      button.setAttribute("data-copied", "true");
      setTimeout(function () { button.textContent = label; }, 2000);
    }, function () {
      // Copying was refused: select the text so a long press copies it.
      var row = button.parentElement && button.parentElement.querySelector("input.url");
      if (row) { row.focus(); row.select(); }
    });
  });

  // Selecting a link's text on focus makes copying by hand easy on phones.
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("input.url")) { event.target.select(); }
  });

  // Sign-in forms send the browser's time zone, so dates show in local time.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    document.querySelectorAll("input[data-timezone]").forEach(function (input) {
      input.value = zone || "";
    });
  } catch (e) { /* no Intl: dates stay in UTC until the account page says otherwise */ }
})();
