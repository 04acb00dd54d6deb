// Keep the colour picker and the #RRGGBB text box of the paint form in step.
document.addEventListener("DOMContentLoaded", () => {
  const picker = document.getElementById("color_picker");
  const text = document.getElementById("color_preview");
  if (!picker || !text) return;
  const pattern = /^#[0-9a-fA-F]{6}$/;
  picker.addEventListener("input", () => { text.value = picker.value.toUpperCase(); });
  text.addEventListener("input", () => {
    if (pattern.test(text.value.trim())) picker.value = text.value.trim().toLowerCase();
  });
});
