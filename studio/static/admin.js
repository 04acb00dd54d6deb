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

// The paints list: "/" goes to the search box; the selection is counted; quick −1/+1
// change the row in place (the forms work without this script too).
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const search = document.getElementById("q");
  const typing = event.target.closest("input, textarea, select, [contenteditable]");
  if (!search || typing) return;
  event.preventDefault();
  search.focus();
  search.select();
});

document.addEventListener("DOMContentLoaded", () => {
  const bulk = document.getElementById("bulk");
  if (!bulk) return;
  const live = document.getElementById("list-live");
  const boxes = Array.from(document.querySelectorAll('input[name="ids"][form="bulk"]'));
  const pageBox = document.querySelector("[data-select-page]");
  const allMatching = bulk.querySelector("[data-all-matching]");
  const count = bulk.querySelector("[data-selected-count]");

  // A change's message gives way after a while, so it does not cover the page's bottom for
  // good (on a phone, the bulk buttons); a refusal stays until the next change.
  const MESSAGE_SECONDS = 8;
  let fading;
  const say = (text, refused) => {
    clearTimeout(fading);
    if (!refused) fading = setTimeout(() => live.replaceChildren(), MESSAGE_SECONDS * 1000);
    live.replaceChildren();
    const line = document.createElement("p");
    line.className = refused ? "flash flash-error" : "flash flash-success";
    if (refused) line.setAttribute("role", "alert");
    line.textContent = text;
    live.append(line);
  };

  const counted = () => {
    const ticked = boxes.filter((box) => box.checked).length;
    pageBox.checked = ticked === boxes.length;
    pageBox.indeterminate = ticked > 0 && ticked < boxes.length;
    count.textContent = allMatching.checked ? "(all matching)" : `(${ticked} ticked)`;
  };
  pageBox.hidden = false;
  pageBox.addEventListener("change", () => {
    boxes.forEach((box) => { box.checked = pageBox.checked; });
    counted();
  });
  boxes.forEach((box) => box.addEventListener("change", counted));
  allMatching.addEventListener("change", counted);
  counted();

  // Enter in a bulk field presses that field's own button, not the form's first one.
  bulk.querySelectorAll("[data-enter-clicks] input").forEach((input) => {
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      input.closest("[data-enter-clicks]").querySelector("button").click();
    });
  });

  document.querySelectorAll("form[data-step]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const row = form.closest("tr");
      const buttons = form.querySelectorAll("button");
      // Read before the buttons are disabled: a disabled button is not sent.
      const body = new FormData(form, event.submitter);
      buttons.forEach((button) => { button.disabled = true; });
      try {
        const response = await fetch(form.action, {
          method: "POST",
          body,
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        const type = response.headers.get("Content-Type") || "";
        const answer = type.includes("json") ? await response.json() : {};
        if (response.ok) {
          row.querySelector("[data-stock]").innerHTML = answer.badge;
          say(answer.message, false);
        } else {
          say(answer.message || `The change was refused (${response.status}); reload the page and try again.`, true);
        }
      } catch (error) {
        say("The shop could not be reached; nothing was changed. Try again.", true);
      } finally {
        buttons.forEach((button) => { button.disabled = false; });
        event.submitter.focus();
      }
    });
  });
});
