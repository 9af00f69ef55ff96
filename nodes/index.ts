// Public entry of the nodes layer.
export { NodeAgent, type NodeAgentOptions } from './node-agent.ts';
export { gpuInfo, probeCapabilities, probeGpu, probeOnnxRuntime, type ProbeOptions } from './capabilities.ts';
export { ActorHost, type ActorHostOptions, type HostStats } from './actor-host.ts';
export { WorkerPool, type WorkerPoolOptions } from './worker-pool.ts';
export { VirtualFleet, VIRTUAL_ACTOR_TYPES, virtualNodeIds, type VirtualFleetOptions } from './virtual-fleet.ts';
