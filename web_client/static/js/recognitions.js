// What the server read from a still or photo (server event `recognized`, inspector only):
// a business licence's fields and their comparison with the application, or a shop
// sign's text against the applicant's name. The panel places itself after the prudent
// warnings; the newest reading is on top.
import { t, onLangChange } from "./i18n.js";

const KIND_KEYS = { business_licence: "rec.kind.business_licence", shop_sign: "rec.kind.shop_sign" };
const RESULT_KEYS = { matched: "rec.result.matched", differs: "rec.result.differs", unreadable: "rec.result.unreadable" };
const FIELD_KEYS = {
  name: "rec.field.name", uscc: "rec.field.uscc", type: "rec.field.type",
  legal_representative: "rec.field.legal_representative", address: "rec.field.address",
  established: "rec.field.established", valid_from: "rec.field.valid_from", valid_to: "rec.field.valid_to",
  text: "rec.field.text",
};

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
    for (const r of this.readings) {
      const card = document.createElement("div");
      card.className = "recognition";
      card.dataset.result = r.result ?? "unreadable";
      const title = document.createElement("p");
      title.className = "recognition-head";
      title.textContent = `${t(KIND_KEYS[r.kind] ?? "rec.kind.other")} · ${t(RESULT_KEYS[r.result] ?? "rec.result.unreadable")}`;
      card.append(title);
      const list = document.createElement("dl");
      for (const [field, value] of Object.entries(r.fields ?? {})) {
        if (!FIELD_KEYS[field] || value == null) continue;
        const dt = document.createElement("dt");
        dt.textContent = t(FIELD_KEYS[field]);
        const dd = document.createElement("dd");
        const match = r.matches?.[field];
        dd.textContent = match === true ? `${value} ✓` : match === false ? `${value} ✗` : String(value);
        if (match != null) dd.dataset.match = String(match);
        list.append(dt, dd);
      }
      card.append(list);
      this.root.append(card);
    }
  }
}
