import { afterEach, describe, expect, it } from "vitest";
import { defaultSocketBase, vmSocketUrl } from "../src/endpoints";
import { parseRoute, vmHref } from "../src/route";
import { loadToken, saveToken } from "../src/session";

describe("routes", () => {
  it("round-trips any VM name through the hash", () => {
    for (const name of ["my-vm", "<b>x</b>", "a b&c?d#e", "名前"]) {
      expect(parseRoute(vmHref(name))).toEqual({ page: "vm", name });
    }
  });

  it("falls back to the list for anything else", () => {
    expect(parseRoute("")).toEqual({ page: "list" });
    expect(parseRoute("#/vm/")).toEqual({ page: "list" });
    expect(parseRoute("#/vm/%E0%A4%A")).toEqual({ page: "list" });
  });
});

describe("endpoints", () => {
  it("derives ws:// or wss:// from the page", () => {
    expect(defaultSocketBase({ protocol: "http:", host: "127.0.0.1:8080" })).toBe("ws://127.0.0.1:8080");
    expect(defaultSocketBase({ protocol: "https:", host: "vm.example" })).toBe("wss://vm.example");
  });

  it("puts the name in one path segment", () => {
    expect(vmSocketUrl("ws://h/", "a/b", "t", "console")).toBe("ws://h/ws/vms/a%2Fb/console?token=t");
  });
});

describe("session token", () => {
  afterEach(() => {
    sessionStorage.clear();
    window.history.replaceState(null, "", "/");
  });

  it("takes ?token= from the URL, keeps it, and removes it from the address bar", () => {
    window.history.replaceState(null, "", "/?token=abc&x=1#/vm/my-vm");
    expect(loadToken()).toBe("abc");
    expect(window.location.search).toBe("?x=1");
    expect(window.location.hash).toBe("#/vm/my-vm");
    expect(loadToken()).toBe("abc");
  });

  it("forgets it on request", () => {
    saveToken("abc");
    saveToken(null);
    expect(loadToken()).toBeNull();
  });
});
