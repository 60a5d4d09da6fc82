// The REST side of vmws that the dashboard uses: the VM list.

import { VM_STATUSES, type VMStatus } from "./protocol";

export interface VMSummary {
  readonly name: string;
  readonly status: VMStatus;
}

/** A failed request; `status` is the HTTP status (0 for a network failure). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export async function fetchVMs(token: string, signal?: AbortSignal, base = ""): Promise<VMSummary[]> {
  let response: Response;
  try {
    response = await fetch(`${base}/api/vms`, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
      signal,
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ApiError(0, "vmws is not reachable");
  }
  if (response.status === 401 || response.status === 403) {
    throw new ApiError(response.status, "the token was refused (expired, or without read permission)");
  }
  if (!response.ok) throw new ApiError(response.status, `GET /api/vms answered ${response.status}`);
  const body: unknown = await response.json();
  const vms = (body as { vms?: unknown })?.vms;
  if (!Array.isArray(vms)) throw new ApiError(response.status, "unexpected answer from /api/vms");
  return vms
    .filter(
      (v): v is VMSummary =>
        typeof v?.name === "string" && (VM_STATUSES as readonly string[]).includes(v?.status),
    )
    .map((v) => ({ name: v.name, status: v.status }));
}
