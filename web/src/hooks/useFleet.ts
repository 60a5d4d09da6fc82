// useFleet: every VM the token may see, live from /ws/fleet (FleetStore), tied to
// the component's life like useVMWebSocket.

import { defaultSocketBase, fleetSocketUrl, ticketedFleetUrl } from "../endpoints";
import { FleetStore, type FleetSnapshot } from "../fleet";
import type { SocketFactory } from "../socket";
import { useStore } from "./useStore";

export interface UseFleetOptions {
  url?: string;
  token: string | null;
  tickets?: boolean;
  createSocket?: SocketFactory;
}

const IDLE: FleetSnapshot = { connection: "closed", info: null, rows: null, lastError: null };

export function useFleet(options: UseFleetOptions): FleetSnapshot {
  const { token, createSocket } = options;
  const tickets = options.tickets ?? true;
  const base = options.url ?? defaultSocketBase();
  const { snapshot } = useStore(
    [base, token, tickets, createSocket],
    () => {
      if (!token) return null;
      return new FleetStore({ url: tickets ? ticketedFleetUrl(base, token) : fleetSocketUrl(base, token), createSocket });
    },
    IDLE,
  );
  return snapshot;
}
