/**
 * `scan --format sarif`: the scan as a SARIF 2.1.0 log (the format of GitHub code scanning and most
 * static-analysis viewers).
 *
 * - One `result` per flagged method (p ≥ threshold). Its `ruleId` is the method's CWE when the detector
 *   names one, else `vulnlab/vulnerable-method`; `level` is `error` from p ≥ 0.9 (or the threshold, when
 *   that is higher) and `warning` from the threshold up; the location is the method's region (lines
 *   and UTF-16 columns) in its file, relative to the scanned root (`uriBaseId` SRCROOT);
 *   `properties.probability` is the score.
 * - `relatedLocations`: the lines that drove a score, strongest first, with their share of the
 *   attribution (`scan --explain`: `topLines`, from train/explain.ts); the method is in
 *   `run.properties.explain`.
 * - Files that could not be read, are not UTF-8 or do not parse, and methods longer than the context
 *   are `invocations[0].toolExecutionNotifications`, their descriptors in `tool.driver.notifications`.
 */
import { pathToFileURL } from 'node:url';
import type { Location, Log, Notification, ReportingDescriptor, Result, Run } from 'sarif';
import {
  truncationNote,
  type ScanIssue,
  type ScanIssueKind,
  type ScannedMethod,
  type ScanReport,
  type SourceRegion,
} from './report.ts';

export const SARIF_SCHEMA =
  'https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json';
/** Flagged methods at or above this probability are SARIF errors; below it, warnings. */
export const ERROR_PROBABILITY = 0.9;
export const GENERIC_RULE = 'vulnlab/vulnerable-method';
const ROOT_ID = 'SRCROOT';

const GENERIC_DESCRIPTOR: ReportingDescriptor = {
  id: GENERIC_RULE,
  name: 'VulnerableMethod',
  shortDescription: { text: 'Method likely to be vulnerable' },
  fullDescription: {
    text: 'A LoRA-finetuned code model scores the method as likely vulnerable: its probability is at or above the detector’s threshold.',
  },
  help: {
    text: 'Review the method for injection, unchecked input, unsafe deserialization and similar flaws. The score is a classifier’s probability, not a proof: it names no line and can be wrong either way.',
  },
  defaultConfiguration: { level: 'warning' },
  properties: { tags: ['security'], precision: 'medium' },
};

const NOTIFICATIONS: Record<ScanIssueKind, { descriptor: ReportingDescriptor; level: Notification.level }> = {
  unreadable: {
    descriptor: { id: 'vulnlab/unreadable-file', shortDescription: { text: 'File or folder not readable' } },
    level: 'warning',
  },
  'not-utf8': {
    descriptor: { id: 'vulnlab/not-utf8', shortDescription: { text: 'File is not UTF-8 text' } },
    level: 'warning',
  },
  'not-java': {
    descriptor: { id: 'vulnlab/not-java', shortDescription: { text: 'File does not parse as Java' } },
    level: 'warning',
  },
  truncated: {
    descriptor: {
      id: 'vulnlab/truncated-method',
      shortDescription: { text: 'Method longer than the model’s context, scored truncated' },
    },
    level: 'note',
  },
  'too-long': {
    descriptor: {
      id: 'vulnlab/method-too-long',
      shortDescription: { text: 'Method longer than the model’s context, not scored' },
    },
    level: 'warning',
  },
};
const NOTIFICATION_KINDS = Object.keys(NOTIFICATIONS) as ScanIssueKind[];

/** `CWE-89` → a rule with GitHub's CWE tag; anything else → the generic rule. */
function ruleFor(cwe: string | undefined): ReportingDescriptor {
  if (!cwe) return GENERIC_DESCRIPTOR;
  const number = /^CWE-(\d+)$/i.exec(cwe)?.[1];
  return {
    ...GENERIC_DESCRIPTOR,
    id: cwe,
    name: number ? `CWE${number}` : cwe,
    shortDescription: { text: `Method likely to be vulnerable (${cwe})` },
    properties: {
      tags: ['security', ...(number ? [`external/cwe/cwe-${number}`] : [])],
      precision: 'medium',
    },
  };
}

export function sarifLevel(probability: number, threshold: number): Result.level {
  if (probability >= Math.max(ERROR_PROBABILITY, threshold)) return 'error';
  return probability >= threshold ? 'warning' : 'none';
}

function location(uri: string, region?: Partial<SourceRegion>, message?: string): Location {
  return {
    physicalLocation: { artifactLocation: { uri, uriBaseId: ROOT_ID }, ...(region && { region }) },
    ...(message ? { message: { text: message } } : {}),
  };
}

function result(m: ScannedMethod, threshold: number, rules: ReportingDescriptor[]): Result {
  let ruleIndex = rules.findIndex((r) => r.id === (m.cwe || GENERIC_RULE));
  if (ruleIndex < 0) ruleIndex = rules.push(ruleFor(m.cwe)) - 1;
  const truncated = m.truncated
    ? ` It is longer than the model’s context and was ${truncationNote(m.truncated)}.`
    : '';
  return {
    ruleId: rules[ruleIndex].id,
    ruleIndex,
    level: sarifLevel(m.probability, threshold),
    message: {
      text: `${m.method} is likely vulnerable: p = ${m.probability.toFixed(4)} (threshold ${threshold.toFixed(3)}).${truncated}`,
    },
    locations: [
      {
        ...location(m.uri, m.region),
        logicalLocations: [{ fullyQualifiedName: m.method, kind: 'member' }],
      },
    ],
    ...(m.topLines?.length
      ? {
          relatedLocations: m.topLines.map((t, id) => ({
            id,
            ...location(
              m.uri,
              { startLine: t.startLine, endLine: t.endLine ?? t.startLine },
              `${Math.round(t.weight * 100)}% of the attribution to this method's score`,
            ),
          })),
        }
      : {}),
    properties: {
      probability: m.probability,
      ...(m.truncated && { truncated: m.truncated }),
    },
  };
}

function notification(issue: ScanIssue): Notification {
  const { descriptor, level } = NOTIFICATIONS[issue.kind];
  return {
    descriptor: { id: descriptor.id, index: NOTIFICATION_KINDS.indexOf(issue.kind) },
    level,
    message: { text: `${decodeURIComponent(issue.uri)}: ${issue.message}` },
    locations: [location(issue.uri, issue.region)],
    ...(issue.method ? { properties: { method: issue.method } } : {}),
  };
}

/** The SARIF log of a scan; `threshold` must be known (only flagged methods become results). */
export function scanSarif(report: ScanReport & { threshold: number }, version: string): Log {
  const rules: ReportingDescriptor[] = [GENERIC_DESCRIPTOR];
  const results = report.methods.filter((m) => m.flagged).map((m) => result(m, report.threshold, rules));
  const run: Run = {
    tool: {
      driver: {
        name: 'VulnLab',
        version,
        semanticVersion: version,
        rules,
        notifications: NOTIFICATION_KINDS.map((k) => NOTIFICATIONS[k].descriptor),
        properties: {
          model: report.model,
          adapter: report.adapter,
          threshold: report.threshold,
          errorProbability: Math.max(ERROR_PROBABILITY, report.threshold),
        },
      },
    },
    invocations: [
      {
        executionSuccessful: true,
        toolExecutionNotifications: report.issues.map(notification),
      },
    ],
    originalUriBaseIds: { [ROOT_ID]: { uri: `${pathToFileURL(report.root).href.replace(/\/?$/, '/')}` } },
    columnKind: 'utf16CodeUnits',
    results,
    properties: {
      filesScanned: report.files,
      methodsScored: report.methods.length,
      ...(report.explain && { explain: report.explain }),
    },
  };
  return { $schema: SARIF_SCHEMA, version: '2.1.0', runs: [run] };
}
