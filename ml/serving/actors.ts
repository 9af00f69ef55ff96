/**
 * Module for `actors.modules`: load it on every node that may host inference replicas
 * (`--actors.modules '["ml/serving/actors.ts"]'`).
 */
import { inferenceActorType } from './inference-actor.ts';
import { pipelineActorType } from './pipeline-actor.ts';

export const actorTypes = [inferenceActorType, pipelineActorType];
