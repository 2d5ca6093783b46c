import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;

/**
 * Flyway's checksum rule, written independently with the JDK classes Flyway itself uses, so the
 * tests can check lifeboat's Python implementation against Java's own readLine() and CRC32:
 * each line as BufferedReader.readLine() returns it (no line ending), a BOM dropped from the
 * first line, CRC32 over the UTF-8 bytes, printed as a signed 32-bit int.
 * Usage: java FlywayChecksum.java FILE... ; prints "<checksum>\t<file>" per file.
 * With `--hash TEXT` it prints instead Java's String.hashCode() of TEXT.
 */
public class FlywayChecksum {
    public static void main(String[] args) throws Exception {
        if (args.length == 2 && args[0].equals("--hash")) {
            System.out.println(args[1].hashCode());
            return;
        }
        for (String path : args) {
            CRC32 crc = new CRC32();
            try (BufferedReader reader = new BufferedReader(
                    new InputStreamReader(new FileInputStream(path), StandardCharsets.UTF_8))) {
                String line;
                boolean first = true;
                while ((line = reader.readLine()) != null) {
                    if (first && line.startsWith("\uFEFF")) {
                        line = line.substring(1);
                    }
                    first = false;
                    crc.update(line.getBytes(StandardCharsets.UTF_8));
                }
            }
            System.out.println((int) crc.getValue() + "\t" + path);
        }
    }
}
