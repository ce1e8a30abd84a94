// Loaded with `node --import`: every connection but to a loopback address, and every name lookup
// but of a loopback name, is refused before any packet leaves, with one line starting REFUSED on
// stderr, so a test can show that a framework it runs reached nothing outside (as
// tests/support/loopback_only.py does for Python).
import dns from "node:dns";
import net from "node:net";

const REFUSED = "REFUSED outside address:";
const LOOPBACK_NAMES = new Set(["localhost", "localhost.localdomain"]);

function isLoopback(host) {
  if (host == null || LOOPBACK_NAMES.has(String(host).toLowerCase())) return true;
  const address = String(host).replace(/^\[|\]$/g, "");
  if (net.isIPv4(address)) return address.startsWith("127.");
  if (net.isIPv6(address)) return address === "::1" || /^::ffff:127\./i.test(address);
  return false;
}

function refuse(host) {
  process.stderr.write(`${REFUSED} ${host}\n`);
  throw new Error(`${REFUSED} ${host}`);
}

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const [first] = args;
  const options = Array.isArray(first) ? first[0] : first;
  if (options && typeof options === "object" && !options.path && !isLoopback(options.host ?? "localhost")) {
    refuse(options.host);
  } else if (typeof first === "number" && !isLoopback(typeof args[1] === "string" ? args[1] : "localhost")) {
    refuse(args[1]);
  }
  return connect.apply(this, args);
};

for (const api of [dns, dns.promises]) {
  const lookup = api.lookup;
  api.lookup = function (hostname, ...rest) {
    if (!isLoopback(hostname)) refuse(hostname);
    return lookup.call(this, hostname, ...rest);
  };
}
