/**
 * Which topics the agent may publish a reply to. A request names its reply topic (`replyTo`,
 * or the MQTT 5 response topic), so it is outside input: a wildcard, a `$` topic or one over the
 * broker's limits makes a broker (aedes, mosquitto, AWS IoT Core) drop the agent's connection,
 * and the QoS 1 reply sent again after each reconnect drops it again (issue #31). The protocol
 * refuses what no broker accepts; a front adds its configured limits and required prefix.
 */
import { ValidationError } from '../src/errors/index.js';

export interface ReplyTopicRules {
  /** Longest topic, in UTF-8 bytes. */
  maxBytes: number;
  /** Most levels (`a/b/c` has 3). */
  maxLevels: number;
  /** When set, every reply topic must start with it (e.g. the thing's namespace). */
  prefix?: string;
}

/** What the protocol allows on any front: the MQTT limits, where a broker's own may be lower. */
export const PROTOCOL_REPLY_TOPIC_RULES: ReplyTopicRules = { maxBytes: 1024, maxLevels: 64 };

/** Which rule a refused topic broke: a metric label, so a small fixed set. */
export type ReplyTopicReason = 'wildcard' | 'reserved' | 'invalid' | 'too_long' | 'prefix';

export interface ReplyTopicProblem {
  reason: ReplyTopicReason;
  message: string;
}

/** A reply topic the agent will not publish to; the reply goes to the results topic instead. */
export class ReplyTopicError extends ValidationError {
  readonly reason: ReplyTopicReason;
  constructor(topic: string, problem: ReplyTopicProblem) {
    super('REPLY_TOPIC_INVALID', `reply topic "${printable(topic)}" ${problem.message}`, { details: { topic: printable(topic), reason: problem.reason } });
    this.reason = problem.reason;
  }
}

/** Why `topic` is not a topic to publish a reply to, or undefined when it is one. */
export function replyTopicProblem(topic: string, rules: ReplyTopicRules = PROTOCOL_REPLY_TOPIC_RULES): ReplyTopicProblem | undefined {
  const no = (reason: ReplyTopicReason, message: string): ReplyTopicProblem => ({ reason, message });
  if (topic.length === 0) return no('invalid', 'is empty');
  if (topic.includes('#') || topic.includes('+')) return no('wildcard', 'contains an MQTT wildcard (+ or #), which no broker accepts in a publish');
  if (topic.startsWith('$')) return no('reserved', 'is a $ topic ($SYS, $aws…), reserved for the broker');
  // Control characters: U+0000 is forbidden by MQTT, and mosquitto also refuses the others.
  if ([...topic].some(isControl)) return no('invalid', 'contains a control character');
  // A lone surrogate cannot be encoded as UTF-8: the broker would see U+FFFD or refuse it.
  if (Buffer.from(topic, 'utf8').toString('utf8') !== topic) return no('invalid', 'is not well-formed Unicode');
  const bytes = Buffer.byteLength(topic, 'utf8');
  if (bytes > rules.maxBytes) return no('too_long', `is ${bytes} bytes long; the limit is ${rules.maxBytes}`);
  const levels = topic.split('/').length;
  if (levels > rules.maxLevels) return no('too_long', `has ${levels} levels; the limit is ${rules.maxLevels}`);
  if (rules.prefix !== undefined && !topic.startsWith(rules.prefix)) return no('prefix', `does not start with the required prefix "${rules.prefix}"`);
  return undefined;
}

/** Throws {@link ReplyTopicError} when `topic` breaks `rules`. */
export function checkReplyTopic(topic: string, rules: ReplyTopicRules = PROTOCOL_REPLY_TOPIC_RULES): void {
  const problem = replyTopicProblem(topic, rules);
  if (problem !== undefined) throw new ReplyTopicError(topic, problem);
}

/** Topics in logs and messages: control characters escaped, long ones cut. */
function printable(topic: string): string {
  const escaped = [...topic].map((c) => (isControl(c) ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c)).join('');
  return escaped.length > 200 ? `${escaped.slice(0, 200)}…` : escaped;
}

/** C0 and C1 control characters, U+0000 included. */
function isControl(c: string): boolean {
  const code = c.charCodeAt(0);
  return code <= 0x1f || (code >= 0x7f && code <= 0x9f);
}
