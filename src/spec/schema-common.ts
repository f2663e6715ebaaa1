import { z } from "zod";

/** Building blocks shared by the spec's schemas. */

export const dnsLabel = z
  .string()
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
    "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
  )
  .max(63, "must be at most 63 characters");

const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P|m)?$/;

export const quantity = z.string().regex(QUANTITY, "must be a Kubernetes quantity such as 20Gi, 500Mi or 250m");

const UNITS: Readonly<Record<string, number>> = {
  "": 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
};

/** A quantity as `quantity` admits them (32Gi, 500Mi, 1.5G) in its base unit; undefined for any other form. */
export function quantityValue(text: string): number | undefined {
  const match = QUANTITY.exec(text);
  if (match === null) return undefined;
  const unit = match[2] ?? "";
  return Number(text.slice(0, text.length - unit.length)) * (UNITS[unit] as number);
}

/** An image reference pinned to a tag or digest; `latest` and untagged images are refused. */
export const image = z
  .string()
  .regex(/^[a-z0-9.\-_/:]+(@sha256:[a-f0-9]{64})?$/, "must be an image reference such as registry/name:tag")
  .refine((ref) => /@sha256:/.test(ref) || /:[^/:]+$/.test(ref), "must pin a tag or digest (registry/name:1.2.3)")
  .refine((ref) => !/:latest$/.test(ref), "must not use the mutable tag 'latest'; pin a version");
