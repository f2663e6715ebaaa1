import { useEffect, useState } from "preact/hooks";
import type { AdapterList } from "../../../src/gateway/admin-api.ts";
import { errorOf, type Api } from "../api.ts";
import { bytes, count } from "../format.ts";
import { usePolling } from "../hooks.ts";
import { href } from "../routes.ts";

/** GET /v1/adapters/{name}/documents (src/gateway/documents.ts). */
interface Listing {
  readonly collection: string;
  readonly sources: ReadonlyArray<{ readonly source: string; readonly chunks: number }>;
  readonly maxBodyBytes: number;
}

interface IngestResult {
  readonly added: number;
  readonly updated: number;
  readonly unchanged: number;
  readonly removed: number;
}

type Format = "markdown" | "text" | "html";

/** What `diatonic ingest` reads, by extension (src/rag/chunker.ts). */
const FORMATS: Readonly<Record<string, Format>> = {
  md: "markdown",
  markdown: "markdown",
  mdx: "markdown",
  txt: "text",
  text: "text",
  rst: "text",
  html: "html",
  htm: "html",
};
const ACCEPT = Object.keys(FORMATS)
  .map((extension) => `.${extension}`)
  .join(",");
/** Room for the JSON around a document, as the CLI leaves. */
const ENVELOPE_BYTES = 2048;

interface FileOutcome {
  readonly name: string;
  readonly ok: boolean;
  readonly text: string;
}

interface Progress {
  readonly file: string;
  readonly index: number;
  readonly total: number;
  /** 0..1 of this file's upload; 1 while the gateway chunks and embeds it. */
  readonly sent: number;
}

function formatOf(name: string): Format | undefined {
  return FORMATS[name.split(".").pop()?.toLowerCase() ?? ""];
}

function chunks(count: number): string {
  return `${count} chunk${count === 1 ? "" : "s"}`;
}

function summary(result: IngestResult): string {
  const parts = [
    result.added > 0 ? `${chunks(result.added)} added` : "",
    result.updated > 0 ? `${result.updated} updated` : "",
    result.unchanged > 0 ? `${result.unchanged} unchanged` : "",
    result.removed > 0 ? `${result.removed} removed` : "",
  ].filter((part) => part !== "");
  return parts.length > 0 ? parts.join(", ") : "nothing changed";
}

/** POST with upload progress: fetch cannot report it, XMLHttpRequest can. */
function postWithProgress(api: Api, path: string, body: string, onProgress: (fraction: number) => void): Promise<IngestResult> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    for (const [name, value] of Object.entries(api.headers(true))) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.upload.onload = () => onProgress(1);
    request.onerror = () => reject(new Error("the upload failed: the gateway cannot be reached"));
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) {
        resolve(JSON.parse(request.responseText) as IngestResult);
        return;
      }
      void errorOf(new Response(request.responseText, { status: request.status })).then(reject);
    };
    request.send(body);
  });
}

function Collection({ api, adapter }: { readonly api: Api; readonly adapter: string }) {
  const path = `/v1/adapters/${encodeURIComponent(adapter)}/documents`;
  const listing = usePolling((signal) => api.get<Listing>(path, signal), 0, [api, path]);
  const [progress, setProgress] = useState<Progress | undefined>(undefined);
  const [outcomes, setOutcomes] = useState<readonly FileOutcome[]>([]);
  const [confirming, setConfirming] = useState<string | undefined>(undefined);
  const [deleting, setDeleting] = useState(false);
  const [deleteNote, setDeleteNote] = useState<FileOutcome | undefined>(undefined);

  useEffect(() => {
    setOutcomes([]);
    setDeleteNote(undefined);
    setConfirming(undefined);
  }, [adapter]);

  const upload = async (files: readonly File[]) => {
    const limit = (listing.data?.maxBodyBytes ?? 4 * 1024 * 1024) - ENVELOPE_BYTES;
    const results: FileOutcome[] = [];
    setOutcomes([]);
    for (const [index, file] of files.entries()) {
      setProgress({ file: file.name, index, total: files.length, sent: 0 });
      const format = formatOf(file.name);
      if (format === undefined) {
        results.push({ name: file.name, ok: false, text: `not ingested: only ${ACCEPT} files are read` });
        continue;
      }
      if (file.size > limit) {
        results.push({
          name: file.name,
          ok: false,
          text: `not ingested: ${bytes(file.size)} is over the gateway's request limit (${bytes(limit)}); split it, or use diatonic ingest`,
        });
        continue;
      }
      const text = await file.text();
      if (text.includes("\u0000")) {
        results.push({ name: file.name, ok: false, text: "not ingested: a binary file" });
        continue;
      }
      try {
        const result = await postWithProgress(api, path, JSON.stringify({ documents: [{ source: file.name, text, format }] }), (sent) =>
          setProgress({ file: file.name, index, total: files.length, sent }),
        );
        results.push({ name: file.name, ok: true, text: summary(result) });
      } catch (error) {
        results.push({ name: file.name, ok: false, text: error instanceof Error ? error.message : String(error) });
      }
      setOutcomes([...results]);
    }
    setOutcomes(results);
    setProgress(undefined);
    listing.refresh();
  };

  const remove = async (source: string) => {
    setDeleting(true);
    try {
      const result = await api.post<IngestResult>(path, { deleteSources: [source] });
      setDeleteNote({ name: source, ok: true, text: `deleted: ${chunks(result.removed)} removed` });
    } catch (error) {
      setDeleteNote({ name: source, ok: false, text: error instanceof Error ? error.message : String(error) });
    }
    setDeleting(false);
    setConfirming(undefined);
    listing.refresh();
  };

  const data = listing.data;
  const total = data?.sources.reduce((sum, source) => sum + source.chunks, 0) ?? 0;
  return (
    <>
      <section class="card" aria-labelledby="upload-heading">
        <h2 id="upload-heading">Add documents</h2>
        <p class="muted small">
          Markdown, text and HTML files are chunked, embedded and stored in the adapter's collection; a file already there under the same
          name is replaced.
        </p>
        <label for="files">Files to ingest</label>
        <input
          id="files"
          type="file"
          multiple
          accept={ACCEPT}
          disabled={progress !== undefined}
          onChange={(event) => {
            const input = event.currentTarget;
            const files = [...(input.files ?? [])];
            input.value = "";
            if (files.length > 0) void upload(files);
          }}
        />
        {progress !== undefined && (
          <div class="progress" aria-live="polite">
            <label for="upload-progress">
              {progress.sent < 1 ? "Uploading" : "Chunking and embedding"} {progress.file} ({progress.index + 1} of {progress.total})
            </label>
            <progress id="upload-progress" max={progress.total} value={progress.index + progress.sent} />
          </div>
        )}
        {outcomes.length > 0 && (
          <ul class="outcomes" data-testid="upload-outcomes" aria-live="polite">
            {outcomes.map((outcome) => (
              <li key={outcome.name} class={outcome.ok ? "ok" : "error-text"}>
                <span class="mono">{outcome.name}</span>: {outcome.text}
              </li>
            ))}
          </ul>
        )}
      </section>

      <section class="card" aria-labelledby="collection-heading">
        <h2 id="collection-heading">{data !== undefined ? `Collection ${data.collection}` : "Collection"}</h2>
        {listing.error !== undefined && (
          <p role="alert" class="error">
            {listing.error.message}
          </p>
        )}
        {deleteNote !== undefined && (
          <p role="status" class={deleteNote.ok ? "ok" : "error-text"}>
            <span class="mono">{deleteNote.name}</span>: {deleteNote.text}
          </p>
        )}
        {data === undefined ? (
          <p class="muted">Loading…</p>
        ) : data.sources.length === 0 ? (
          <p class="muted">No documents yet.</p>
        ) : (
          <>
            <p class="muted small">
              {count(data.sources.length)} documents, {count(total)} chunks
            </p>
            <div class="table-wrap">
              <table data-testid="documents">
                <thead>
                  <tr>
                    <th scope="col">Source</th>
                    <th scope="col">Chunks</th>
                    <th scope="col">
                      <span class="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {data.sources.map((source) => (
                    <tr key={source.source}>
                      <td class="mono">{source.source}</td>
                      <td>{count(source.chunks)}</td>
                      <td class="actions-cell">
                        {confirming === source.source ? (
                          <>
                            <button type="button" class="danger" disabled={deleting} onClick={() => void remove(source.source)}>
                              Delete {source.source}
                            </button>
                            <button type="button" class="secondary" disabled={deleting} onClick={() => setConfirming(undefined)}>
                              Cancel
                            </button>
                          </>
                        ) : (
                          <button
                            type="button"
                            class="secondary"
                            aria-label={`Delete ${source.source}…`}
                            onClick={() => setConfirming(source.source)}
                          >
                            Delete…
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </section>
    </>
  );
}

export function DocumentsView({ api, adapter }: { readonly api: Api; readonly adapter: string | undefined }) {
  const adapters = usePolling((signal) => api.get<AdapterList>("/v1/admin/adapters", signal), 0, [api]);
  const rag = adapters.data?.data.filter((entry) => entry.rag !== null) ?? [];
  const selected = adapter !== undefined && rag.some((entry) => entry.name === adapter) ? adapter : rag[0]?.name;
  return (
    <>
      <h1>Documents</h1>
      {adapters.error !== undefined && (
        <p role="alert" class="error">
          {adapters.error.message}
        </p>
      )}
      {adapters.data !== undefined && rag.length === 0 && (
        <p class="muted">No adapter of this platform uses RAG: give one a rag binding in the spec to give it documents.</p>
      )}
      {selected !== undefined && (
        <>
          <div class="field inline">
            <label for="rag-adapter">RAG adapter</label>
            <select id="rag-adapter" value={selected} onChange={(event) => (location.hash = href("documents", event.currentTarget.value))}>
              {rag.map((entry) => (
                <option key={entry.name} value={entry.name}>
                  {entry.name} (collection {entry.rag?.collection})
                </option>
              ))}
            </select>
          </div>
          <Collection api={api} adapter={selected} />
        </>
      )}
    </>
  );
}
