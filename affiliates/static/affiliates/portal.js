// The affiliate portal's behaviour, as a file (the CSP allows no inline script).
// "Copy" buttons: <button class="copy" data-copy="text">Copy</button>.
document.querySelectorAll("button.copy").forEach(function (b) {
  b.addEventListener("click", function () {
    var t = b.getAttribute("data-copy");
    var done = function () {
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard) { navigator.clipboard.writeText(t).then(done, done); } else { done(); }
  });
});
