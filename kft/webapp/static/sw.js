// kft web app: the service worker. Caches every file of the app on the first visit and then
// serves them from that cache (cache first), so the page works fully offline. kft fills in
// CACHE (the app version and the model's sha256) and FILES when it writes the folder: a new
// export is a new sw.js, which the browser installs; on activation it deletes this app's
// older caches and takes over the open pages (which reload once to show the new model).
const CACHE = "__CACHE__";
const FILES = ["__FILES__"];
// One cache name per app folder (scope): two kft apps on one host keep their own caches.
const PREFIX = `kft-web ${self.registration.scope} `;

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(PREFIX + CACHE);
    // cache: "reload" skips the HTTP cache, which may still hold the previous export's files.
    await cache.addAll(FILES.map((f) => new Request(f, { cache: "reload" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && name !== PREFIX + CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(PREFIX + CACHE);
    // ignoreSearch: "./?delegate=cpu" is the cached page too.
    const hit = await cache.match(request, { ignoreSearch: true });
    return hit || fetch(request);  // not one of the app's files (kft serve's /model, /health): the network
  })());
});
