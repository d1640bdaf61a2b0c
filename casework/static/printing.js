// The Print button of a printable form: shown only where scripts run (the browser's own Print works without it).
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("print-form");
  if (!button) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    window.print();
  });
});
