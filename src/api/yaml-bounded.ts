import { Composer, type CST, type Document, Lexer, LineCounter, Parser } from 'yaml';
import { Limits } from '../lib/limits.js';
import { readColonEndedFlowItems } from './yaml-flow-colon.js';

export type BoundedYaml =
  | { ok: true; documents: Document.Parsed[]; lineCounter: LineCounter }
  | { ok: false; limit: 'depth' | 'documents'; max: number; line: number };

/**
 * YAML documents of `text`, read with the nesting depth and the document count bounded while the text is parsed.
 *
 * The yaml package lexes and parses with explicit stacks (no recursion), but composes documents and turns them
 * into JS recursively, one call frame per nesting level: `a: [[[...]]]` 100k deep (200 KB) overflowed the stack
 * and aborted V8 ("RegExpCompiler Allocation failed"). So the parse is driven here one lexeme at a time, and
 * stops as soon as the parser's stack (the document, then one entry per open collection) is deeper than
 * `maxDepth`, or one document too many has ended; only then are the documents composed.
 */
export function parseYamlBounded(text: string, opts: { maxDepth?: number; maxDocuments?: number } = {}): BoundedYaml {
  const maxDepth = opts.maxDepth ?? Limits.configDepth;
  const maxDocuments = opts.maxDocuments ?? Limits.configDocuments;
  const lineCounter = new LineCounter();
  const parser = new Parser(lineCounter.addNewLine);
  // As Parser.parse does before its first lexeme: line 1 starts at offset 0.
  lineCounter.addNewLine(0);
  const lineOf = () => lineCounter.linePos(parser.offset).line;
  const tokens: CST.Token[] = [];
  let documents = 0;
  const take = (t: CST.Token): boolean => {
    tokens.push(t);
    if (t.type === 'document') documents += 1;
    return documents <= maxDocuments;
  };
  for (const lexeme of new Lexer().lex(text)) {
    for (const t of parser.next(lexeme)) if (!take(t)) return { ok: false, limit: 'documents', max: maxDocuments, line: lineOf() };
    if (parser.stack.length > maxDepth + 2) return { ok: false, limit: 'depth', max: maxDepth, line: lineOf() };
  }
  for (const t of parser.end()) if (!take(t)) return { ok: false, limit: 'documents', max: maxDocuments, line: lineOf() };
  const composer = new Composer({ uniqueKeys: true, merge: true });
  const docs: Document.Parsed[] = [];
  for (const t of tokens) for (const d of composer.next(t)) docs.push(d as Document.Parsed);
  for (const d of composer.end()) docs.push(d as Document.Parsed);
  for (const d of docs) readColonEndedFlowItems(d, text);
  return { ok: true, documents: docs, lineCounter };
}
