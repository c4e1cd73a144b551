// The language of Takan's pages and the helpers that put its strings into the DOM. The strings
// themselves are catalogues with the same keys, one per language: static/i18n/zh.json (Chinese,
// the default) and static/i18n/en.json. Both are fetched once, when this module is first
// imported (top-level await: every importer waits for them, so t() stays synchronous).
//
// Language choice: `?lang=en|zh` in the URL wins (and is remembered), then the value saved in
// localStorage, then Chinese.

export const LANGS = ["zh", "en"];
/** Where a key missing from the current catalogue is looked up next, in this order. */
const FALLBACK = ["en", "zh"];
const STORAGE_KEY = "takan.lang";
const listeners = new Set();

/** The catalogue of `value` (its URL is relative to this module), or {} if it cannot be had. */
async function load(value) {
  const url = new URL(`../i18n/${value}.json`, import.meta.url);
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return await response.json();
  } catch (err) {
    console.error(`i18n: the ${value} catalogue (${url.pathname}) did not load: ${err.message}; showing fallbacks`);
    return {};
  }
}

const CATALOGUES = Object.fromEntries(
  await Promise.all(LANGS.map(async (value) => [value, await load(value)])),
);
const reported = new Set();

function initialLang() {
  const fromUrl = new URLSearchParams(location.search).get("lang");
  if (LANGS.includes(fromUrl)) {
    remember(fromUrl);
    return fromUrl;
  }
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (LANGS.includes(saved)) return saved;
  } catch { /* storage blocked (private mode): fall through */ }
  return "zh";
}

function remember(value) {
  try { localStorage.setItem(STORAGE_KEY, value); } catch { /* ignore */ }
}

let current = initialLang();

export function lang() {
  return current;
}

/** The text of `key` in the current language, else in English, else Chinese, else the key itself. */
function lookup(key) {
  const text = CATALOGUES[current][key];
  if (text !== undefined) return text;
  if (!reported.has(key)) {
    reported.add(key);
    console.warn(`i18n: "${key}" is missing from the ${current} catalogue`);
  }
  for (const other of FALLBACK) {
    if (CATALOGUES[other][key] !== undefined) return CATALOGUES[other][key];
  }
  return key;
}

/** Whether some catalogue has `key` (for keys built from data, which may have no text). */
export function has(key) {
  return LANGS.some((value) => CATALOGUES[value][key] !== undefined);
}

/** Translate `key`, replacing `{name}` with `params.name`. Unknown keys fall back to English, then Chinese, then the key. */
export function t(key, params = {}) {
  return lookup(key).replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

export function setLang(value) {
  if (!LANGS.includes(value) || value === current) return;
  current = value;
  remember(value);
  applyI18n();
  for (const fn of listeners) fn(value);
}

/** Call `fn(lang)` after every language change (pages re-render their dynamic text). */
export function onLangChange(fn) {
  listeners.add(fn);
}

/**
 * Fill the static text of `root`: `data-i18n` sets textContent, `data-i18n-title`,
 * `data-i18n-aria` and `data-i18n-placeholder` set those attributes.
 */
export function applyI18n(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  const titleKey = document.body?.dataset.titleKey;
  if (titleKey) document.title = `${t(titleKey)} · ${t("app.name")}`;
}

/** Wire every `.lang-toggle` button of the page to switch between Chinese and English. */
export function bindLangToggles(root = document) {
  for (const btn of root.querySelectorAll(".lang-toggle")) {
    btn.dataset.i18n = "lang.switch";
    btn.dataset.i18nAria = "lang.switchLabel";
    btn.addEventListener("click", () => setLang(current === "zh" ? "en" : "zh"));
  }
  applyI18n(root);
}
