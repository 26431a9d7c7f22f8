// Starts Swagger UI on /docs. Kept in a file (no inline script) so a strict
// Content-Security-Policy can stay on. Requests go to this server ("servers": [{"url": "/"}]),
// so "Try it out" reaches a userhub on localhost, which the web version of Postman cannot.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var csrf = document.querySelector('meta[name="csrf-token"]');
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: false, // true puts each path's <a> inside its expand <button> (axe: nested-interactive)
    // Swagger UI wraps the servers <select> in an empty <label> (axe: select-name).
    onComplete: function () {
      var servers = document.getElementById("servers");
      if (servers) servers.setAttribute("aria-label", "Servers");
    },
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // no badge fetched from validator.swagger.io: offline, and CSP-clean
    // A logged-in browser session may call the API too; its writes need the CSRF token.
    requestInterceptor: function (request) {
      if (csrf && request.method && !/^(GET|HEAD|OPTIONS)$/i.test(request.method)) {
        request.headers["X-CSRFToken"] = csrf.content;
      }
      return request;
    },
  });
})();
