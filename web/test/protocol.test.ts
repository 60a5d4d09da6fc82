import { describe, expect, it } from "vitest";
import { decode, encode } from "../src/protocol";
import { metricsData } from "./fakeSocket";

describe("encode", () => {
  it("wraps data in the spec's envelope with an ISO timestamp", () => {
    const frame = JSON.parse(encode("command", { action: "start", requestId: "r1" }, new Date(Date.UTC(2023, 4, 23))));
    expect(frame).toEqual({
      type: "command",
      timestamp: "2023-05-23T00:00:00.000Z",
      data: { action: "start", requestId: "r1" },
    });
  });
});

describe("decode", () => {
  const frame = (type: string, data: unknown) => JSON.stringify({ type, timestamp: "t", data });

  it("accepts each server message type in its documented shape", () => {
    expect(decode(frame("status", { status: "running", lastStateChange: "x", uptime: 3 }))?.type).toBe("status");
    expect(decode(frame("metrics", metricsData(1, 2, 3, 4)))?.type).toBe("metrics");
    expect(decode(frame("response", { requestId: "r", success: true, message: "ok" }))?.type).toBe("response");
    expect(decode(frame("console", { content: "hi", eof: false }))?.type).toBe("console");
    expect(decode(frame("error", { code: "VM_NOT_FOUND", message: "no" }))?.type).toBe("error");
    expect(decode(frame("heartbeat", {}))?.type).toBe("heartbeat");
  });

  it("drops what is not JSON, not an object, of an unknown type, or missing fields", () => {
    expect(decode("not json")).toBeNull();
    expect(decode(new ArrayBuffer(4))).toBeNull();
    expect(decode("[1,2]")).toBeNull();
    expect(decode(frame("surprise", {}))).toBeNull();
    expect(decode(frame("status", { status: "exploded" }))).toBeNull();
    expect(decode(frame("metrics", { cpu: { utilization: "high" } }))).toBeNull();
    expect(decode(frame("response", { success: true }))).toBeNull();
  });
});
