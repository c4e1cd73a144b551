// The protocol's constants, as the server enforces them (GET /api/v1/protocol, built by
// signaling/protocol_constants.py from the modules that check them): limits, role and status
// names, the server's media routing. Fetched once, when this module is first imported
// (top-level await: importers see PROTOCOL ready), so no page repeats a value the server owns.
//
// At load, every `data-max-chars="<limit>"` element of the page gets `maxLength` from
// `PROTOCOL.limits.<limit>_chars`.

const URL_PATH = "/api/v1/protocol";
const RETRY_MS = [500, 1500, 4000];

async function load() {
  let last = null;
  for (let attempt = 0; attempt <= RETRY_MS.length; attempt += 1) {
    if (attempt) await new Promise((resolve) => setTimeout(resolve, RETRY_MS[attempt - 1]));
    try {
      const response = await fetch(URL_PATH, { cache: "no-store", credentials: "omit" });
      if (response.ok) return Object.freeze(await response.json());
      last = new Error(`HTTP ${response.status}`);
    } catch (err) {
      last = err;
    }
  }
  // Nothing on the page can work without them: say so (in both languages, the catalogues may be
  // out of reach too) rather than run on guesses.
  const notice = document.createElement("p");
  notice.className = "protocol-error";
  notice.setAttribute("role", "alert");
  notice.textContent = "无法连接服务器，请稍后刷新页面。 · The server could not be reached; reload the page in a moment.";
  document.body?.prepend(notice);
  throw new Error(`protocol: ${URL_PATH} did not load: ${last?.message ?? last}`);
}

/** {roles: {link, staff, staff_exclusive}, source_role, limits: {...}, open_statuses, timer_phases, prudent_lists, webhooks: {states, events}} */
export const PROTOCOL = await load();

/** Set `maxLength` of every `[data-max-chars]` element under `root` from the served limits. */
export function applyLimits(root = document) {
  for (const el of root.querySelectorAll("[data-max-chars]")) {
    const limit = PROTOCOL.limits[`${el.dataset.maxChars}_chars`];
    if (Number.isInteger(limit)) el.maxLength = limit;
  }
}

applyLimits();
