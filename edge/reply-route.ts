/**
 * Where a message front (MQTT, Greengrass) publishes a reply: the topic the request named
 * when it meets the front's rules (edge/reply-topic.ts), else the device's results topic with
 * a REPLY_TOPIC_INVALID error in place of the reply, so that the requester, or whoever watches
 * the results topic, learns why no answer came where it was asked for.
 */
import type { TopicsConfig } from './config.js';
import { expandTopic } from './config.js';
import { decodeReply, encodeBody, errorBody } from './protocol.js';
import { ReplyTopicError, replyTopicProblem, type ReplyTopicRules } from './reply-topic.js';

/** AWS IoT Core's limits on a topic: 256 bytes, 7 slashes. */
export const DEFAULT_REPLY_MAX_BYTES = 256;
export const DEFAULT_REPLY_MAX_LEVELS = 8;

/** The configured reply-topic rules of a front, with `{thingName}` expanded in the prefix. */
export function replyRulesFor(topics: TopicsConfig, thingName: string): ReplyTopicRules {
  return {
    maxBytes: topics.replyMaxBytes ?? DEFAULT_REPLY_MAX_BYTES,
    maxLevels: topics.replyMaxLevels ?? DEFAULT_REPLY_MAX_LEVELS,
    ...(topics.replyPrefix !== undefined ? { prefix: expandTopic(topics.replyPrefix, thingName) } : {}),
  };
}

export interface RoutedReply {
  topic: string;
  payload: Buffer;
  /** Set when the requested topic was refused and the payload is the error reply. */
  refused?: ReplyTopicError;
}

export function routeReply(reply: { payload: Buffer; contentType: string }, requested: string | undefined, rules: ReplyTopicRules, resultsTopic: string): RoutedReply {
  if (requested === undefined) return { topic: resultsTopic, payload: reply.payload };
  const problem = replyTopicProblem(requested, rules);
  if (problem === undefined) return { topic: requested, payload: reply.payload };
  const refused = new ReplyTopicError(requested, problem);
  let requestId: string | undefined;
  try {
    const id = decodeReply(reply.payload, reply.contentType).requestId;
    requestId = typeof id === 'string' ? id : undefined;
  } catch {
    // The agent encoded this reply itself; should it not decode, the error reply has no id.
  }
  const encoding = /json/i.test(reply.contentType) ? 'json' : 'msgpack';
  return { topic: resultsTopic, payload: encodeBody(errorBody(requestId, refused), encoding), refused };
}
