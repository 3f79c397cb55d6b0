// The `gatehouse-gateway` package entry: the plugin/provider SDK plus the embedding API.
import 'reflect-metadata';
export * from './sdk';
// the embedding API's contracts, which the SDK leaves out: a custom config store, the registration of an extension
export type { ConfigStore, RawConfig, DataSections, DataChange, SecretFieldPaths, DestinationBindings, ClusterCommand, ClusterBus, Extension } from './contracts';
export { Gateway, startGateway, type GatewayOptions, type ReloadResult } from './gateway';
export { GatehouseError, ErrorCodes, ErrorStatus, statusOf, type ErrorCode, type ConfigIssue } from './errors';
export { token, resolve, resolveAll, PLUGIN, SECRET_PROVIDER, LOGGER, METRICS, CONFIG_STORE, CLOCK, TIMERS, CLUSTER_BUS, type Token, type Timers } from './tokens';
export { createGatewayContainer, registerExtension } from './container';
export { FileConfigStore, MemoryConfigStore } from './stores/file-store';
export { createLogger } from './observe/log';
export { createMetrics } from './observe/metrics';
export type { GatewayConfig, RouteConfig, UpstreamConfig, ConsumerConfig } from './config/types';
export { startTestGateway, captureLogs, type TestGateway, type TestGatewayOptions, type TestResponse, type EchoedRequest } from './testing';
export { loadExtensions, type ExtensionModule } from './extensions/load';
export { FakeClock } from './secrets/fake-clock';
