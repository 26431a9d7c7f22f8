/* Passkeys (WebAuthn) in the browser: a button runs one ceremony with the server.

   <button type="button" data-passkey="register" or "authenticate"
           data-options-url="..."   POST {} (or {"name": ...}): {"challenge": key, "options": {...}}
           data-verify-url="..."    POST {"challenge": key, "credential": {...}[, "name": ...]}:
                                    {"redirect": url}, or a problem+json whose detail is shown
           data-status="id"         the aria-live element that tells what happens
           data-name-input="id"     (register) the input holding the new passkey's name
           data-csrf-token="..."    (optional) else the form's, or the page's csrf_token field
           data-msg-unsupported, data-msg-cancelled, data-msg-failed, data-msg-working,
           data-msg-exists>         the messages, in the page's language

   Without WebAuthn the buttons are hidden and the status element says why. No inline script:
   the page loads this file, which wires every such button. */
(function () {
  "use strict";

  function b64urlToBuffer(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function bufferToB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (item) {
      return Object.assign({}, item, { id: b64urlToBuffer(item.id) });
    });
  }

  // The JSON options as the browser takes them (built-in parsers where the browser has them).
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: b64urlToBuffer(json.challenge),
      user: Object.assign({}, json.user, { id: b64urlToBuffer(json.user.id) }),
      excludeCredentials: withIds(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: b64urlToBuffer(json.challenge),
      allowCredentials: withIds(json.allowCredentials),
    });
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const response = credential.response;
    const out = {
      id: credential.id,
      rawId: bufferToB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: bufferToB64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = bufferToB64url(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = bufferToB64url(response.authenticatorData);
      out.response.signature = bufferToB64url(response.signature);
      out.response.userHandle = response.userHandle ? bufferToB64url(response.userHandle) : null;
    }
    return out;
  }

  function csrfToken(button) {
    if (button.dataset.csrfToken) return button.dataset.csrfToken;
    const form = button.closest("form");
    const field = (form && form.querySelector('input[name="csrf_token"]')) ||
      document.querySelector('input[name="csrf_token"]');
    if (field) return field.value;
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function statusOf(button) {
    return button.dataset.status ? document.getElementById(button.dataset.status) : null;
  }

  function say(button, message, isError) {
    const status = statusOf(button);
    if (!status) return;
    status.textContent = message || "";
    status.classList.toggle("error", Boolean(isError));
  }

  class Refusal extends Error {}

  async function post(button, url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": csrfToken(button),
      },
      body: JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (ignored) {
      data = null;
    }
    if (!response.ok) {
      throw new Refusal((data && data.detail) || button.dataset.msgFailed || "");
    }
    return data || {};
  }

  function nameOf(button) {
    const input = button.dataset.nameInput ? document.getElementById(button.dataset.nameInput) : null;
    return input ? input.value : "";
  }

  async function run(button) {
    const registering = button.dataset.passkey === "register";
    const extra = registering ? { name: nameOf(button) } : {};
    const begun = await post(button, button.dataset.optionsUrl, extra);
    let credential;
    if (registering) {
      credential = await navigator.credentials.create({ publicKey: creationOptions(begun.options) });
    } else {
      credential = await navigator.credentials.get({ publicKey: requestOptions(begun.options) });
    }
    if (!credential) throw new Refusal(button.dataset.msgCancelled || "");
    const body = Object.assign({ challenge: begun.challenge, credential: credentialJSON(credential) }, extra);
    const done = await post(button, button.dataset.verifyUrl, body);
    if (done.redirect) window.location.assign(done.redirect);
    return done;
  }

  function messageFor(button, error) {
    if (error instanceof Refusal) return error.message;
    if (error && error.name === "NotAllowedError") return button.dataset.msgCancelled;
    if (error && error.name === "AbortError") return button.dataset.msgCancelled;
    if (error && error.name === "InvalidStateError") {
      return button.dataset.msgExists || button.dataset.msgFailed;
    }
    return button.dataset.msgFailed;
  }

  async function onClick(event) {
    const button = event.currentTarget;
    event.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    say(button, button.dataset.msgWorking, false);
    try {
      await run(button);
    } catch (error) {
      say(button, messageFor(button, error), true);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  function supported() {
    return typeof window.PublicKeyCredential === "function" &&
      Boolean(navigator.credentials && navigator.credentials.create && navigator.credentials.get);
  }

  function wire() {
    const buttons = document.querySelectorAll("[data-passkey]");
    buttons.forEach(function (button) {
      if (!supported()) {
        button.hidden = true;
        say(button, button.dataset.msgUnsupported, false);
        return;
      }
      button.hidden = false;
      button.addEventListener("click", onClick);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
})();
