// All user-visible strings of Takan's pages (Chinese first, English available), the current
// language, and the helpers that put the strings into the DOM.
//
// Language choice: `?lang=en|zh` in the URL wins (and is remembered), then the value saved in
// localStorage, then Chinese.

const STRINGS = {
  zh: {
    "app.name": "踏勘",
    "app.console": "远程踏勘 · 检查员控制台",
    "app.observe": "远程踏勘 · 观察",
    "app.join": "远程踏勘",
    "lang.switch": "EN",
    "lang.switchLabel": "Switch to English",

    "role.inspector": "检查员",
    "role.applicant": "申请人",
    "role.observer": "观察员",
    "role.you": "（我）",

    "status.scheduled": "未开始",
    "status.live": "进行中",
    "status.ended": "已结束",
    "status.cancelled": "已取消",
    "status.interrupted": "已中断",
    "status.unknown": "—",

    "conn.new": "未连接",
    "conn.connecting": "连接中",
    "conn.connected": "已连接",
    "conn.disconnected": "已断开",
    "conn.failed": "连接失败",
    "conn.closed": "已关闭",
    "conn.error": "已拒绝",
    "conn.none": "—",

    "info.inspection": "检查信息",
    "info.caseNo": "案件编号",
    "info.item": "事项",
    "info.address": "现场地址",
    "info.elapsed": "已进行",
    "info.status": "状态",

    "conninfo.title": "连接状态",
    "conninfo.socket": "信令",
    "conninfo.peer": "媒体（服务器）",
    "conninfo.pc": "媒体（本机）",

    "participants.title": "参与人员",
    "participants.alone": "暂无其他人员加入",
    "participants.micOff": "麦克风已关闭",
    "participants.camOff": "摄像头已关闭",

    "ctl.mute": "静音",
    "ctl.unmute": "取消静音",
    "ctl.camOff": "关闭摄像头",
    "ctl.camOn": "打开摄像头",
    "ctl.switch": "切换摄像头",
    "ctl.switchShort": "翻转",
    "ctl.end": "结束检查",
    "ctl.sound": "点击开启声音",
    "ctl.observerBadge": "观察模式 · 仅观看",

    "end.title": "结束本次检查？",
    "end.body": "结束后所有参与人员的音视频将断开，本次检查无法再继续。",
    "end.confirm": "结束检查",
    "end.cancel": "取消",
    "end.failed": "结束检查失败：{message}",

    "stage.applicant": "申请人画面",
    "stage.local": "我的画面",
    "remote.waitingApplicant": "等待申请人加入…",
    "remote.applicantCamOff": "申请人已关闭摄像头",
    "remote.waitingVideo": "正在接收画面…",
    "remote.reconnecting": "网络中断，正在重新连接…",
    "remote.inspector": "检查员",
    "remote.inspectorCamOff": "检查员未开摄像头",
    "remote.waitingInspector": "等待检查员",
    "local.camOff": "摄像头已关闭",
    "local.noCam": "未使用摄像头",
    "local.starting": "正在打开摄像头…",

    "line.connecting": "正在连接…",
    "line.reconnecting": "网络不稳定，正在重新连接…",
    "line.media": "正在建立音视频连接…",
    "line.waitingInspector": "已连接，等待检查员开始",
    "line.waitingApplicant": "已连接，等待申请人加入",
    "line.scheduled": "已连接，检查尚未开始",
    "line.live": "检查进行中",
    "line.ended": "检查已结束",
    "line.cancelled": "检查已取消",
    "line.camera": "请允许使用摄像头和麦克风",
    "join.hint": "请使用后置摄像头对准现场，按检查员的指示操作",

    "warn.noCamera": "未找到摄像头，仅使用麦克风。",
    "warn.noMic": "未找到麦克风，仅使用摄像头。",
    "warn.switchFailed": "无法切换摄像头。",
    "warn.noOtherCamera": "没有其他可用的摄像头。",
    "warn.offerFailed": "音视频连接失败，正在重试…（{message}）",

    "btn.retry": "重试",
    "btn.reload": "重新加载",
    "btn.continueNoCam": "不使用摄像头继续",
    "btn.here": "在此页面继续",

    "err.token_invalid.title": "链接无效",
    "err.token_invalid.body": "此链接不完整或已被修改。请确认打开的是完整的链接，或请检查员重新发送链接。",
    "err.token_expired.title": "链接已过期",
    "err.token_expired.body": "此链接已超过有效期。请联系检查员获取新的链接。",
    "err.inspection_unknown.title": "找不到此检查",
    "err.inspection_unknown.body": "此链接对应的检查不存在。请确认链接是否正确，或联系检查员。",
    "err.inspection_cancelled.title": "检查已取消",
    "err.inspection_cancelled.body": "本次检查已被取消，无需进行任何操作。如有疑问，请联系检查员。",
    "err.inspection_ended.title": "检查已结束",
    "err.inspection_ended.body": "本次检查已经结束，您可以关闭此页面。如需再次检查，请联系检查员获取新的链接。",
    "err.rate_limited.title": "尝试次数过多",
    "err.rate_limited.body": "短时间内连接次数过多。请等待一分钟后点击“重试”。",
    "err.no_token.title": "链接不完整",
    "err.no_token.body": "此链接缺少访问凭证（“#”之后的部分）。请重新打开收到的完整链接，或请检查员重新发送。",
    "err.join_failed.title": "无法加入检查",
    "err.join_failed.body": "服务器拒绝了加入请求：{message}。请稍后重试，或联系检查员。",
    "err.unknown.title": "无法连接",
    "err.unknown.body": "服务器拒绝了连接：{message}。请稍后重试。",

    "err.media_denied.title": "摄像头和麦克风未获允许",
    "err.media_denied.body": "浏览器拒绝了摄像头或麦克风权限，检查无法进行。",
    "err.media_denied.steps": "电脑或安卓手机：点击地址栏左侧的锁形（或设置）图标，将“摄像头”和“麦克风”设为“允许”。|iPhone / iPad：打开“设置” → “Safari 浏览器” → “摄像头”和“麦克风”，选择“允许”或“询问”。|然后点击下面的“重试”。",
    "err.media_notfound.title": "未找到摄像头",
    "err.media_notfound.body": "此设备上没有可用的摄像头或麦克风。请换一台带摄像头的手机打开此链接，或检查摄像头是否已连接。",
    "err.media_inuse.title": "摄像头被占用",
    "err.media_inuse.body": "摄像头或麦克风正被其他应用（如通话、相机）使用。请关闭这些应用后点击“重试”。",
    "err.media_insecure.title": "需要安全连接（HTTPS）",
    "err.media_insecure.body": "浏览器只允许在 HTTPS 安全页面中使用摄像头和麦克风。请使用以 https:// 开头的链接打开本页，或联系检查员。",
    "err.media_other.title": "无法打开摄像头",
    "err.media_other.body": "打开摄像头或麦克风时出错：{message}。请重试，或换用其他浏览器（推荐最新版 Chrome、Safari 或微信内置浏览器）。",

    "final.ended.title": "检查已结束",
    "final.ended.body": "感谢您的配合。音视频已断开，您现在可以关闭此页面。",
    "final.ended.staffBody": "本次检查已结束，所有参与人员的音视频已断开。",
    "final.cancelled.title": "检查已取消",
    "final.cancelled.body": "本次检查已被取消，音视频已断开。如有疑问，请联系检查员。",
    "final.kicked.title": "已在其他设备上打开",
    "final.kicked.body": "此检查已在另一个标签页或设备上打开，本页面已断开。如需在这里继续，请点击下面的按钮（另一处将被断开）。",
  },

  en: {
    "app.name": "Takan",
    "app.console": "Remote inspection · Inspector console",
    "app.observe": "Remote inspection · Observer",
    "app.join": "Remote site inspection",
    "lang.switch": "中文",
    "lang.switchLabel": "切换到中文",

    "role.inspector": "Inspector",
    "role.applicant": "Applicant",
    "role.observer": "Observer",
    "role.you": " (you)",

    "status.scheduled": "Scheduled",
    "status.live": "Live",
    "status.ended": "Ended",
    "status.cancelled": "Cancelled",
    "status.interrupted": "Interrupted",
    "status.unknown": "—",

    "conn.new": "Not connected",
    "conn.connecting": "Connecting",
    "conn.connected": "Connected",
    "conn.disconnected": "Disconnected",
    "conn.failed": "Failed",
    "conn.closed": "Closed",
    "conn.error": "Refused",
    "conn.none": "—",

    "info.inspection": "Inspection",
    "info.caseNo": "Case no.",
    "info.item": "Item",
    "info.address": "Site address",
    "info.elapsed": "Elapsed",
    "info.status": "Status",

    "conninfo.title": "Connection",
    "conninfo.socket": "Signaling",
    "conninfo.peer": "Media (server)",
    "conninfo.pc": "Media (browser)",

    "participants.title": "Participants",
    "participants.alone": "No one else has joined yet",
    "participants.micOff": "Microphone off",
    "participants.camOff": "Camera off",

    "ctl.mute": "Mute",
    "ctl.unmute": "Unmute",
    "ctl.camOff": "Camera off",
    "ctl.camOn": "Camera on",
    "ctl.switch": "Switch camera",
    "ctl.switchShort": "Flip",
    "ctl.end": "End inspection",
    "ctl.sound": "Tap to turn on sound",
    "ctl.observerBadge": "Observer · view only",

    "end.title": "End this inspection?",
    "end.body": "Everyone's audio and video will be disconnected and the inspection cannot be resumed.",
    "end.confirm": "End inspection",
    "end.cancel": "Cancel",
    "end.failed": "Could not end the inspection: {message}",

    "stage.applicant": "Applicant's camera",
    "stage.local": "My camera",
    "remote.waitingApplicant": "Waiting for the applicant to join…",
    "remote.applicantCamOff": "The applicant's camera is off",
    "remote.waitingVideo": "Waiting for video…",
    "remote.reconnecting": "Connection lost, reconnecting…",
    "remote.inspector": "Inspector",
    "remote.inspectorCamOff": "Inspector camera off",
    "remote.waitingInspector": "Waiting for inspector",
    "local.camOff": "Camera off",
    "local.noCam": "No camera",
    "local.starting": "Starting camera…",

    "line.connecting": "Connecting…",
    "line.reconnecting": "Network unstable, reconnecting…",
    "line.media": "Setting up audio and video…",
    "line.waitingInspector": "Connected, waiting for the inspector",
    "line.waitingApplicant": "Connected, waiting for the applicant",
    "line.scheduled": "Connected, the inspection has not started",
    "line.live": "Inspection in progress",
    "line.ended": "Inspection ended",
    "line.cancelled": "Inspection cancelled",
    "line.camera": "Please allow the camera and microphone",
    "join.hint": "Point the rear camera at the site and follow the inspector's instructions",

    "warn.noCamera": "No camera found; continuing with the microphone only.",
    "warn.noMic": "No microphone found; continuing with the camera only.",
    "warn.switchFailed": "Could not switch the camera.",
    "warn.noOtherCamera": "No other camera is available.",
    "warn.offerFailed": "Media connection failed, retrying… ({message})",

    "btn.retry": "Retry",
    "btn.reload": "Reload",
    "btn.continueNoCam": "Continue without camera",
    "btn.here": "Continue on this page",

    "err.token_invalid.title": "This link is not valid",
    "err.token_invalid.body": "The link is incomplete or has been altered. Make sure you opened the complete link, or ask the inspector to send a new one.",
    "err.token_expired.title": "This link has expired",
    "err.token_expired.body": "The link is past its expiry time. Ask the inspector for a new link.",
    "err.inspection_unknown.title": "Inspection not found",
    "err.inspection_unknown.body": "The inspection this link points to does not exist. Check the link, or contact the inspector.",
    "err.inspection_cancelled.title": "Inspection cancelled",
    "err.inspection_cancelled.body": "This inspection was cancelled; there is nothing more to do. Contact the inspector if you have questions.",
    "err.inspection_ended.title": "Inspection ended",
    "err.inspection_ended.body": "This inspection is over and you can close this page. For a new inspection, ask the inspector for a new link.",
    "err.rate_limited.title": "Too many attempts",
    "err.rate_limited.body": "There were too many connection attempts in a short time. Wait a minute, then press Retry.",
    "err.no_token.title": "Incomplete link",
    "err.no_token.body": "The link is missing its access code (the part after “#”). Open the complete link you received, or ask the inspector to send it again.",
    "err.join_failed.title": "Could not join the inspection",
    "err.join_failed.body": "The server refused to let this page join: {message}. Try again later, or contact the inspector.",
    "err.unknown.title": "Could not connect",
    "err.unknown.body": "The server refused the connection: {message}. Try again later.",

    "err.media_denied.title": "Camera and microphone are blocked",
    "err.media_denied.body": "The browser denied access to the camera or microphone, so the inspection cannot go ahead.",
    "err.media_denied.steps": "Computer or Android: tap the lock (or settings) icon left of the address bar and set Camera and Microphone to Allow.|iPhone / iPad: open Settings → Safari → Camera and Microphone, and choose Allow or Ask.|Then press Retry below.",
    "err.media_notfound.title": "No camera found",
    "err.media_notfound.body": "This device has no usable camera or microphone. Open the link on a phone with a camera, or check that the camera is connected.",
    "err.media_inuse.title": "The camera is in use",
    "err.media_inuse.body": "Another app (a call, the camera app) is using the camera or microphone. Close it, then press Retry.",
    "err.media_insecure.title": "A secure (HTTPS) connection is needed",
    "err.media_insecure.body": "Browsers allow the camera and microphone only on secure HTTPS pages. Open this page with a link that starts with https://, or contact the inspector.",
    "err.media_other.title": "Could not start the camera",
    "err.media_other.body": "Starting the camera or microphone failed: {message}. Retry, or use another browser (a current Chrome or Safari).",

    "final.ended.title": "The inspection has ended",
    "final.ended.body": "Thank you. Audio and video are disconnected; you can close this page now.",
    "final.ended.staffBody": "The inspection is over; everyone's audio and video are disconnected.",
    "final.cancelled.title": "The inspection was cancelled",
    "final.cancelled.body": "This inspection was cancelled and audio and video are disconnected. Contact the inspector if you have questions.",
    "final.kicked.title": "Opened on another device",
    "final.kicked.body": "This inspection was opened in another tab or on another device, so this page was disconnected. To continue here instead, press the button below (the other one will be disconnected).",
  },
};

export const LANGS = ["zh", "en"];
const STORAGE_KEY = "takan.lang";
const listeners = new Set();

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

/** Translate `key`, replacing `{name}` with `params.name`. Unknown keys fall back to English, then the key. */
export function t(key, params = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
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
