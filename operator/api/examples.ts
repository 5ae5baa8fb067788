// Reads the examples in examples/ (used by the examples tests).
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export const EXAMPLES_DIR = fileURLToPath(new URL('../../examples/', import.meta.url));

export interface Example {
  file: string;
  object: { apiVersion: string; kind: string; metadata: { name: string }; spec: unknown };
}

export function loadExamples(): Example[] {
  return readdirSync(EXAMPLES_DIR)
    .filter((file) => file.endsWith('.yaml'))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(path.join(EXAMPLES_DIR, file), 'utf8')).map((document) => ({
        file,
        object: document.toJS() as Example['object'],
      })),
    );
}
