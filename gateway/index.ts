// Public entry of the gateway layer, for the layers above it (cli, bench): the HTTP app, and the
// Open Inference Protocol over gRPC with the KServe v2 proto its clients load.
export { buildGateway, type GatewayDeps, type GatewayParts } from './app.ts';
export { startGrpcGateway, type GrpcGateway, type GrpcGatewayOptions } from './grpc/server.ts';
export { LOADER_OPTIONS, PROTO_PATH, loadInferencePackage, type ModelInferRequest, type ModelInferResponse } from './grpc/proto.ts';
export { DashboardFeed, type DashboardOptions, type DashboardSource } from './ui-feed.ts';
