/**
 * Why a document's source name cannot be stored, if it cannot. Citations carry it to every API user,
 * so it names the document (a path inside the folder that was ingested, or a name the user gave),
 * never a place on the machine that ingested it.
 */
export function sourceNameProblem(source: string): string | undefined {
  if (/^([/\\~]|[A-Za-z]:)/.test(source)) return "is a path on the ingesting machine";
  if (source.includes("\\")) return "holds a backslash (a Windows path?)";
  if (source.split("/").some((part) => part === ".." || part === ".")) return "holds a . or .. segment";
  return undefined;
}
