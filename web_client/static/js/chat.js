// The chat panel of both pages: messages from the room's `chat` events (the sender's own
// message comes back that way too) and a form that sends `chat {text}`.

import { t, onLangChange } from "./i18n.js";
import { actionError, timeOfDay } from "./format.js";
import { PROTOCOL } from "./protocol.js";

const MAX_SHOWN = 200;

export class ChatPanel extends EventTarget {
  /** `root` holds `.chat-list`, and a form `.chat-form` with `.chat-input`, `.chat-send`, `.chat-error`. */
  constructor(session, root) {
    super();
    this.session = session;
    this.root = root;
    this.list = root.querySelector(".chat-list");
    this.form = root.querySelector(".chat-form");
    this.input = root.querySelector(".chat-input");
    this.send = root.querySelector(".chat-send");
    this.error = root.querySelector(".chat-error");
    this.messages = [];
    this.sending = false;
    this.input.maxLength = PROTOCOL.limits.text_chars;
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.#submit();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && this.input.tagName === "TEXTAREA") {
        e.preventDefault();
        this.#submit();
      }
    });
    session.addEventListener("server", (e) => {
      if (e.detail.name === "chat") this.#add(e.detail.payload ?? {});
    });
    session.addEventListener("change", () => this.#renderForm());
    onLangChange(() => this.render());
    this.render();
  }

  #add(p) {
    if (typeof p.text !== "string") return;
    const msg = { from: p.from ?? "", text: p.text, at: p.at ?? new Date().toISOString() };
    msg.mine = msg.from === this.session.state.role && msg.from !== "observer";
    this.messages.push(msg);
    if (this.messages.length > MAX_SHOWN) this.messages.shift();
    this.render();
    this.dispatchEvent(new CustomEvent("message", { detail: msg }));
  }

  async #submit() {
    const text = this.input.value.trim();
    if (!text || this.sending) return;
    this.sending = true;
    this.#showError(null);
    this.#renderForm();
    const ack = await this.session.request("chat", { text });
    this.sending = false;
    if (ack.ok) {
      if (this.input.value.trim() === text) this.input.value = "";
    } else {
      this.#showError(t("chat.failed", { message: actionError(ack.error) }));
    }
    this.#renderForm();
    this.input.focus();
  }

  #showError(text) {
    if (!this.error) return;
    this.error.textContent = text ?? "";
    this.error.hidden = !text;
  }

  #renderForm() {
    const usable = this.session.state.joined && !this.session.final;
    this.send.disabled = this.sending || !usable;
    this.input.disabled = !!this.session.final;
    this.input.placeholder = t("chat.placeholder");
    this.send.textContent = t("chat.send");
  }

  render() {
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    if (!this.messages.length) {
      const li = document.createElement("li");
      li.className = "chat-empty";
      li.textContent = t("chat.empty");
      this.list.replaceChildren(li);
    } else {
      this.list.replaceChildren(...this.messages.map((m) => {
        const li = document.createElement("li");
        li.className = `chat-msg${m.mine ? " mine" : ""}`;
        li.dataset.from = m.from;
        const head = document.createElement("div");
        head.className = "chat-meta";
        const who = document.createElement("span");
        who.className = "chat-who";
        who.textContent = t(`role.${m.from}`);
        const when = document.createElement("time");
        when.textContent = timeOfDay(m.at);
        head.append(who, when);
        const body = document.createElement("div");
        body.className = "chat-text";
        body.textContent = m.text;
        li.append(head, body);
        return li;
      }));
    }
    if (atBottom || this.messages.at(-1)?.mine) this.list.scrollTop = this.list.scrollHeight;
    this.#renderForm();
  }
}
