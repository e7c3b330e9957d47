// On a source page, an address ending in #L95-110 marks lines 95 to 110 and scrolls to them.
function pickLines() {
  const m = /^#L(\d+)(?:-(\d+))?$/.exec(window.location.hash);
  document.querySelectorAll(".picked").forEach((e) => e.classList.remove("picked"));
  if (!m) return;
  const first = parseInt(m[1], 10), last = parseInt(m[2] || m[1], 10);
  let top = null;
  for (let n = first; n <= last; n++) {
    const line = document.getElementById(`__span-0-${n}`);
    if (!line) continue;
    line.classList.add("picked");
    top = top || line;
  }
  if (top) top.scrollIntoView({ block: "center" });
}
window.addEventListener("hashchange", pickLines);
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", pickLines);
else pickLines();
