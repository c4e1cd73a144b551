// What the server read from a still or photo (server event `recognized`, inspector only):
// a business licence's or a permit's fields and their comparison with the application, or
// a shop sign's text against the applicant's name, beside the crop of the capture that
// was read (the message carries it: the console cannot fetch evidence). The panel places
// itself after the prudent warnings; the newest reading is on top.
import { t, onLangChange } from "./i18n.js";

const KINDS = ["business_licence", "shop_sign", "food_permit", "drug_permit", "special_trade_permit", "permit"];
const RESULTS = ["matched", "differs", "unreadable"];
const FIELDS = ["name", "uscc", "permit_no", "type", "legal_representative", "address", "established", "valid_from", "valid_to", "text"];
// A permit's period is a validity, a licence's a term of business: the same field, other words.
const PERMIT_FIELDS = { valid_from: "rec.field.permit_valid_from", valid_to: "rec.field.permit_valid_to", address: "rec.field.premises" };

function fieldKey(kind, field) {
  return (kind.endsWith("permit") && PERMIT_FIELDS[field]) || `rec.field.${field}`;
}

export class RecognitionPanel {
  constructor(session, after) {
    this.readings = [];
    this.root = document.createElement("section");
    this.root.className = "recognition-panel";
    this.root.id = "recognitions";
    this.root.hidden = true;
    after.insertAdjacentElement("afterend", this.root);
    session.addEventListener("server", (e) => {
      const { name, payload } = e.detail;
      if (name === "recognized" && payload) {
        this.readings.unshift(payload);
        this.render();
      }
    });
    onLangChange(() => this.render());
  }

  render() {
    this.root.hidden = this.readings.length === 0;
    this.root.replaceChildren();
    const head = document.createElement("h2");
    head.textContent = t("rec.title");
    this.root.append(head);
    for (const r of this.readings) this.root.append(card(r));
  }
}

function card(r) {
  const kind = KINDS.includes(r.kind) ? r.kind : "other";
  const result = RESULTS.includes(r.result) ? r.result : "unreadable";
  const el = document.createElement("div");
  el.className = "recognition";
  el.dataset.result = result;
  el.dataset.kind = kind;
  const title = document.createElement("p");
  title.className = "recognition-head";
  const name = document.createElement("span");
  name.textContent = t(`rec.kind.${kind}`);
  const verdict = document.createElement("span");
  verdict.className = "recognition-result";
  verdict.textContent = t(`rec.result.${result}`);
  title.append(name, verdict);
  el.append(title);
  const body = document.createElement("div");
  body.className = "recognition-body";
  if (r.crop_image?.startsWith("data:image/jpeg;base64,")) {
    const img = document.createElement("img");
    img.className = "recognition-crop";
    img.src = r.crop_image;
    img.alt = t("rec.cropAlt");
    img.title = r.evidence_key ?? "";
    body.append(img);
  }
  const list = document.createElement("dl");
  for (const field of FIELDS) {
    const value = r.fields?.[field];
    if (value == null) continue;
    const dt = document.createElement("dt");
    dt.textContent = t(fieldKey(kind, field));
    const dd = document.createElement("dd");
    const match = r.matches?.[field];
    dd.textContent = match === true ? `${value} ✓` : match === false ? `${value} ✗` : String(value);
    if (match != null) dd.dataset.match = String(match);
    list.append(dt, dd);
  }
  if (!list.children.length) {
    const none = document.createElement("p");
    none.className = "recognition-none";
    none.textContent = t("rec.nothingRead");
    body.append(none);
  } else {
    body.append(list);
  }
  el.append(body);
  return el;
}
