// The package's public pieces, for pages other than the bundled dashboard.

export { useVMWebSocket, type UseVMWebSocketOptions, type VMWebSocket } from "./hooks/useVMWebSocket";
export { useVMConsole, type UseVMConsoleOptions, type VMConsoleHandle } from "./hooks/useVMConsole";
export { VMConsole, type VMConsoleProps } from "./components/VMConsole";
export { VMMetricsChart, type VMMetricsChartProps } from "./components/VMMetricsChart";
export { useFleet, type UseFleetOptions } from "./hooks/useFleet";
export { FleetStore, type FleetRow, type FleetSnapshot } from "./fleet";
export { CommandError, VMMonitor, type CommandOptions, type CommandResult, type MonitorSnapshot } from "./monitor";
export { ConsoleSession, type ConsoleEvent, type ConsoleSnapshot } from "./consoleSession";
export { ManagedSocket, type ConnectionState, type SocketLike, type WireError } from "./socket";
export { MetricsHistory, counterRate, type MetricsPoint } from "./rates";
export * from "./protocol";
