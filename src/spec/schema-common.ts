import { z } from "zod";

/** Building blocks shared by the spec's schemas. */

export const dnsLabel = z
  .string()
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
    "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
  )
  .max(63, "must be at most 63 characters");

export const quantity = z
  .string()
  .regex(/^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P|m)?$/, "must be a Kubernetes quantity such as 20Gi, 500Mi or 250m");

/** An image reference pinned to a tag or digest; `latest` and untagged images are refused. */
export const image = z
  .string()
  .regex(/^[a-z0-9.\-_/:]+(@sha256:[a-f0-9]{64})?$/, "must be an image reference such as registry/name:tag")
  .refine((ref) => /@sha256:/.test(ref) || /:[^/:]+$/.test(ref), "must pin a tag or digest (registry/name:1.2.3)")
  .refine((ref) => !/:latest$/.test(ref), "must not use the mutable tag 'latest'; pin a version");
